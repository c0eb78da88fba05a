"""OpenSteady perception: frames in, typed detections out (faces, hands, bodies, gestures)."""
