// Heap allocated per control tick on a real 32-bit MicroPython VM (host-side, not flashed).
//
//   npm install --prefix ~/.cache/opensteady/mpwasm @micropython/micropython-webassembly-pyscript@1.27.0
//   node firmware/offboard/bench_wasm.mjs [ticks_per_mode] [package_dir]
//
// The MicroPython webassembly port keeps small ints within +-2**30, like
// the RP2040 and ESP32 ports, so an integer that leaves that range is boxed
// on the heap here exactly as on a board (the 64-bit unix port cannot show
// this). The port has no native emitter: the firmware's
// @micropython.native/viper decorators are removed (and viper's ptr16/ptr32
// casts, leaving the arrays they read) while the files are copied into its
// in-memory file system, so the same integer code runs as bytecode. It then runs firmware/bench_tick.tour() (every mode, both
// variants) and bench_tick's track-mode loop with gc.mem_alloc() around each
// tick, and the tour once more with micropython.heap_lock() (any allocation
// raises). The last line printed is JSON.
import fs from "fs";
import path from "path";
import os from "os";
import { fileURLToPath, pathToFileURL } from "url";

const here = path.dirname(fileURLToPath(import.meta.url));
const perMode = parseInt(process.argv[2] || "300", 10);
const pkgDir = process.argv[3] || process.env.OPENSTEADY_MPWASM || path.join(os.homedir(), ".cache", "opensteady", "mpwasm");
const entry = path.join(pkgDir, "node_modules", "@micropython", "micropython-webassembly-pyscript", "micropython.mjs");
const { loadMicroPython } = await import(pathToFileURL(entry).href);
const mp = await loadMicroPython({ heapsize: 2 * 1024 * 1024, stdout: (d) => process.stdout.write(d), linebuffer: false });

function copyDir(src, dst) {
  mp.FS.mkdir(dst);
  for (const name of fs.readdirSync(src)) {
    const s = path.join(src, name);
    if (fs.statSync(s).isDirectory()) {
      if (name !== "__pycache__") copyDir(s, dst + "/" + name);
    } else if (name.endsWith(".py")) {
      mp.FS.writeFile(dst + "/" + name,
        fs.readFileSync(s, "utf8").replace(/^[ \t]*@micropython\.(native|viper)[ \t]*$/gm, "")
          .replace(/(?<!def )\bptr(16|32)\(/g, "("));  // viper's pointer casts: the array itself, indexed as bytecode
    }
  }
}
copyDir(path.dirname(here), "/firmware");  // the firmware package, offboard/ included

const code = `
import gc, json, sys
import micropython
sys.path.insert(0, "/")
from firmware.offboard import bench_tick


class Meter:
    def __init__(self):
        self.m0 = 0
        self.ticks = 0
        self.alloc_ticks = 0
        self.alloc_bytes = 0
        self.locked = False
        self.lock_failures = 0

    def before(self):
        if gc.mem_free() < 65536:
            gc.collect()  # the plant's floats fill the heap between ticks
        if self.locked:
            micropython.heap_lock()
        else:
            self.m0 = gc.mem_alloc()

    def after(self):
        if self.locked:
            micropython.heap_unlock()
            return
        d = gc.mem_alloc() - self.m0
        self.ticks += 1
        if d:
            self.alloc_ticks += 1
            self.alloc_bytes += d


m = Meter()
for variant in (0, 1):
    bench_tick.tour(${perMode}, variant, m.before, m.after)
tour = [m.ticks, m.alloc_ticks, m.alloc_bytes]
m.locked = True
for variant in (0, 1):
    try:
        bench_tick.tour(${perMode}, variant, m.before, m.after)
    except MemoryError:
        micropython.heap_unlock()
        m.lock_failures += 1
print(json.dumps({"impl": sys.implementation.name, "version": list(sys.implementation.version[:3]),
                  "maxsize": sys.maxsize, "tour_ticks": tour[0], "tour_alloc_ticks": tour[1],
                  "tour_alloc_bytes": tour[2], "heap_lock_failures": m.lock_failures}))
`;
try {
  mp.runPython(code);
} catch (e) {
  console.error(e.message || e);
  process.exit(1);
}
