//! The PyPI package `fht-cpu` (module `fht_cpu`; its x86 kernels are FFHT's, built into a
//! nanobind extension with OpenMP), driven through one persistent `python3 -c` child, as
//! `benches/rotate.rs` drives numpy.
//!
//! Protocol (one line each way): `setup rows n stride op threads path` loads the rows
//! (f32, contiguous at the start of the file) into a 64-byte-aligned array whose rows are `stride`
//! apart; `check path` runs the transform once and writes rows 0, rows/2 and rows-1 of the
//! result to `path`; `time iters` runs it `iters` times and answers the seconds
//! (`time.perf_counter` around the calls only); `free` drops the arrays.
//!
//! Calls: contiguous rows go straight to the extension, `fht_cpu._core.fht_2d_f32_rows(x,
//! num_threads)` (in place; src → dst is `np.copyto(out, x)` first, which is what the
//! package's `fht(x, out=out)` does); strided rows go through the public `fht_cpu.fht(x,
//! num_threads=..)`, the only call that takes them (it copies to a contiguous array and
//! back). `num_threads` 1 is the package's single-threaded path, 2 its OpenMP path.
//! The transform is unnormalized (`H_n x`): after each in-place `time`, the child scales
//! the rows by `n^(-iters/2)` (untimed), so the data stays normal.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

const SERVER: &str = r#"
import os, sys, time, warnings
warnings.simplefilter("ignore")
try:
    import numpy as np
except ImportError:
    print("fht-cpu: not installed (numpy is missing: pip install numpy fht-cpu)", flush=True)
    sys.exit(0)
try:
    import fht_cpu
    from fht_cpu import _core
except ImportError:
    print("fht-cpu: not installed (pip install fht-cpu)", flush=True)
    sys.exit(0)
import importlib.metadata as md
try:
    ver = md.version("fht-cpu")
except Exception:
    ver = "?"

bufs = {}

def aligned(role, rows, cols):
    # Reused from case to case: first-touch page faults of fresh memory are slow here.
    count = rows * cols
    raw = bufs.get(role)
    if raw is None or raw.size < count + 16:
        bufs.pop(role, None)
        raw = np.empty(count + 16, np.float32)
        bufs[role] = raw
    off = (-raw.ctypes.data % 64) // 4
    return raw[off:off + count].reshape(rows, cols)

one = aligned("one", 1, 1)
for _ in range(2000):
    _core.fht_2d_f32_rows(one, 1)
t = time.perf_counter()
for _ in range(20000):
    _core.fht_2d_f32_rows(one, 1)
ovh = (time.perf_counter() - t) / 20000 * 1e9
print("ready fht-cpu %s (pip metadata; module __version__ says %s), numpy %s, Python %s; "
      "Python + binding overhead per call (1 x 1 array, 1 thread): %.0f ns" % (
          ver, getattr(fht_cpu, "__version__", "?"), np.__version__, sys.version.split()[0], ovh),
      flush=True)
st = None
for line in sys.stdin:
    a = line.split()
    try:
        if a[0] == "setup":
            st = None
            rows, n, stride, op, threads, path = (int(a[1]), int(a[2]), int(a[3]), a[4],
                                                 int(a[5]), a[6])
            xb = aligned("x", rows, stride)
            with open(path, "rb") as f:
                if stride == n:
                    f.readinto(memoryview(xb.reshape(-1)).cast("B"))
                else:
                    for r in range(rows):
                        f.readinto(memoryview(xb[r, :n]).cast("B"))
            x = xb[:, :n]
            contig = stride == n
            out = None
            if op == "copy":
                ob = aligned("out", rows, stride)
                out = ob[:, :n]
            if op == "inplace":
                if contig:
                    run = lambda: _core.fht_2d_f32_rows(x, threads)
                else:
                    run = lambda: fht_cpu.fht(x, num_threads=threads)
            elif contig:
                def run():
                    np.copyto(out, x)
                    _core.fht_2d_f32_rows(out, threads)
            else:
                run = lambda: fht_cpu.fht(x, out=out, num_threads=threads)
            st = (x, out, run, n, op)
            print("ok", flush=True)
        elif a[0] == "check":
            x, out, run, n, op = st
            run()
            y = x if out is None else out
            r = y.shape[0]
            np.ascontiguousarray(y[[0, r // 2, r - 1]]).tofile(a[1])
            if op == "inplace":
                x *= np.float32(n ** -0.5)
            print("ok", flush=True)
        elif a[0] == "time":
            iters = int(a[1])
            x, out, run, n, op = st
            t = time.perf_counter()
            for _ in range(iters):
                run()
            t = time.perf_counter() - t
            if op == "inplace":
                x *= np.float32(n ** (-iters / 2))
            print(repr(t), flush=True)
        elif a[0] == "free":
            st = None
            print("ok", flush=True)
        else:
            print("err unknown command", flush=True)
    except Exception as e:
        print("err %s: %s" % (type(e).__name__, str(e).replace("\n", " ")), flush=True)
"#;

/// A running fht-cpu server.
pub struct FhtCpu {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
}

/// Where the input and check files go: /dev/shm (memory) if it exists.
fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

impl FhtCpu {
    /// Start the child: the server and its version line, or why not ("fht-cpu: not
    /// installed (...)" when the package or numpy is missing).
    pub fn start() -> Result<(FhtCpu, String), String> {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("fht-cpu: not installed (python3 not runnable: {e})"))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim().to_string();
        match line.strip_prefix("ready ") {
            Some(info) => Ok((
                FhtCpu {
                    child,
                    stdin,
                    stdout,
                    dir: scratch_dir(),
                },
                info.to_string(),
            )),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(if line.is_empty() {
                    "fht-cpu: not installed (python3 failed)".into()
                } else {
                    line
                })
            }
        }
    }

    /// The child's process id (for the CPU accounting).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cmd(&mut self, line: &str) -> Result<String, String> {
        writeln!(self.stdin, "{line}").map_err(|e| format!("fht-cpu server gone: {e}"))?;
        self.stdin
            .flush()
            .map_err(|e| format!("fht-cpu server gone: {e}"))?;
        let mut answer = String::new();
        self.stdout
            .read_line(&mut answer)
            .map_err(|e| format!("fht-cpu server gone: {e}"))?;
        let answer = answer.trim().to_string();
        if answer.is_empty() {
            return Err("fht-cpu server gone".into());
        }
        match answer.strip_prefix("err ") {
            Some(e) => Err(format!("fht-cpu: {e}")),
            None => Ok(answer),
        }
    }

    fn file(&self, what: &str) -> PathBuf {
        self.dir
            .join(format!("quarot-bench-{}-{what}.f32", std::process::id()))
    }

    /// Load `rows` rows of `n` values (row r at `values[r * values_stride..][..n]`) into
    /// the child's rows, `stride` apart. `op`: "inplace" or "copy"; `threads`: the
    /// package's num_threads.
    #[allow(clippy::too_many_arguments)]
    pub fn setup(
        &mut self,
        values: &[f32],
        values_stride: usize,
        rows: usize,
        n: usize,
        stride: usize,
        op: &str,
        threads: usize,
    ) -> Result<(), String> {
        assert!(rows == 0 || (rows - 1) * values_stride + n <= values.len());
        let path = self.file("in");
        // One file for the whole run, overwritten in place (tmpfs pages already there;
        // the child reads only rows * n values of it).
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            for r in 0..rows {
                let row = &values[r * values_stride..][..n];
                // numpy's fromfile reads native-endian float32: write the values' bytes.
                // SAFETY: any f32 is 4 initialized bytes; the view lives as long as `row`.
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        row.as_ptr().cast::<u8>(),
                        std::mem::size_of_val(row),
                    )
                };
                f.write_all(bytes)?;
            }
            Ok(())
        };
        write().map_err(|e| format!("{}: {e}", path.display()))?;
        self.cmd(&format!(
            "setup {rows} {n} {stride} {op} {threads} {}",
            path.display()
        ))
        .map(|_| ())
    }

    /// Transform once and return rows 0, rows/2, rows-1 of the result (unnormalized).
    pub fn check(&mut self, n: usize) -> Result<[Vec<f32>; 3], String> {
        let path = self.file("check");
        let r = self.cmd(&format!("check {}", path.display()));
        let bytes = std::fs::read(&path);
        let _ = std::fs::remove_file(&path);
        r?;
        let bytes = bytes.map_err(|e| e.to_string())?;
        if bytes.len() != 3 * n * 4 {
            return Err(format!(
                "fht-cpu check: {} bytes, expected {}",
                bytes.len(),
                12 * n
            ));
        }
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok([v[..n].to_vec(), v[n..2 * n].to_vec(), v[2 * n..].to_vec()])
    }

    /// Seconds of `iters` calls.
    pub fn time(&mut self, iters: usize) -> Result<f64, String> {
        let a = self.cmd(&format!("time {iters}"))?;
        a.parse()
            .map_err(|_| format!("fht-cpu: unexpected answer {a:?}"))
    }

    /// Drop the arrays of the last setup.
    pub fn free(&mut self) {
        let _ = self.cmd("free");
    }
}

impl Drop for FhtCpu {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.file("in"));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
