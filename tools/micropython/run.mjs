// Run a Python script under MicroPython (WebAssembly port) with the given modules on its path:
//   node run.mjs SCRIPT [MODULE.py ...]
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { readFileSync } from "node:fs";
import { basename } from "node:path";

const [script, ...modules] = process.argv.slice(2);
const mp = await loadMicroPython({ stdout: (line) => process.stdout.write(line + "\n") });
mp.FS.mkdir("/lib");
for (const module of modules) {
  mp.FS.writeFile("/lib/" + basename(module), readFileSync(module));
}
try {
  mp.runPython("import sys\nsys.path.append('/lib')\n" + readFileSync(script, "utf8"));
} catch (error) {
  if (error.name !== "PythonError") throw error;
  process.stderr.write(error.message);
  process.exit(1);
}
