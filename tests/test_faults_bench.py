"""Short runs of `opensteady bench faults` suites, so the long versions in docs/benchmarks.md keep working."""

from opensteady.host import faultbench


def test_fuzzed_streams_never_raise_and_recover_every_intact_frame():
    figures = faultbench.bench_fuzz(1500, seed=3)
    assert figures["exceptions"] == 0
    got, sent = figures["intact_frames_recovered"].split("/")
    assert got == sent and int(sent) > 0
    # CRC-16 passes a damaged candidate with probability 2**-16: far fewer than 1 expected here
    assert figures["false_accepts"] <= 2 and figures["crc_checked_damaged_candidates"] > 500


def test_hostile_mavlink_attitudes_are_all_refused_without_an_exception():
    figures = faultbench.bench_nan(60)
    assert figures["exceptions"] == 0 and figures["refused"] >= 57  # a random quaternion is rarely a unit one


def test_hostile_valid_frames_never_crash_the_firmware():
    assert faultbench.bench_hostile(1, 3.0, seed=1)["exceptions"] == 0
