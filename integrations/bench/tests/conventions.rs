//! The conventions the benchmark relies on, on tiny widths: each implementation's output,
//! brought to the normalized convention the way the bench does it, passes the f64 check
//! (and the unconverted output does not, so the conversion is really needed); the stream
//! loops do what they claim. Peers that are not installed are skipped with a message.

use half::{bf16, f16};
use quarot::hadamard::{hadamard_rows, hadamard_rows_into};
use quarot::{normalized_scale, DType};
use quarot_bench::reference::{check_row, reference};
use quarot_bench::{ffht, fht_cpu::FhtCpu, row_f64, stream, values, Stats};

fn rows_f64(x: &[f32], rows: usize, n: usize) -> Vec<Vec<f64>> {
    (0..rows).map(|r| row_f64(x, r, n, n)).collect()
}

fn check_all(
    got: &[Vec<f64>],
    inputs: &[Vec<f64>],
    out: DType,
    factor: f64,
) -> Result<f64, String> {
    let mut worst = 0f64;
    for (g, x) in got.iter().zip(inputs) {
        let g: Vec<f64> = g.iter().map(|v| v * factor).collect();
        worst = worst.max(check_row(&g, &reference(x), out)?);
    }
    Ok(worst)
}

#[test]
fn reference_is_the_normalized_sylvester_transform() {
    // H_4 x for x = e_1 is column 1 of H_4: [1, -1, 1, -1]; normalized by 1/2.
    let y = reference(&[0.0, 1.0, 0.0, 0.0]);
    assert_eq!(y, vec![0.5, -0.5, 0.5, -0.5]);
    // Orthogonal at a had-K width: the norm is kept.
    let x: Vec<f64> = values(3072, 1).iter().map(|&v| f64::from(v)).collect();
    let y = reference(&x);
    let (nx, ny) = (
        x.iter().map(|v| v * v).sum::<f64>(),
        y.iter().map(|v| v * v).sum::<f64>(),
    );
    assert!((nx - ny).abs() <= 1e-9 * nx, "{nx} vs {ny}");
}

#[test]
fn ours_passes_the_check() {
    for n in [64usize, 3072, 11008] {
        let rows = 3;
        let x = values(rows * n, n as u64);
        let inputs = rows_f64(&x, rows, n);
        let mut y = x.clone();
        hadamard_rows(&mut y, rows, n, n, normalized_scale(n), 0).unwrap();
        check_all(&rows_f64(&y, rows, n), &inputs, DType::F32, 1.0).unwrap();
        // bf16 in, f32 out: the check takes the bf16-rounded input as the input.
        let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        let inputs_b: Vec<Vec<f64>> = (0..rows).map(|r| row_f64(&xb, r, n, n)).collect();
        let mut yb = vec![0f32; rows * n];
        hadamard_rows_into(&xb, n, &mut yb, n, rows, n, normalized_scale(n), 0).unwrap();
        check_all(&rows_f64(&yb, rows, n), &inputs_b, DType::F32, 1.0).unwrap();
    }
}

#[test]
fn ffht_is_unnormalized_sylvester() {
    if !ffht::available() {
        eprintln!("skipped: {}", ffht::INFO);
        return;
    }
    for n in [8usize, 64, 4096] {
        let rows = 3;
        let stride = n + 8;
        let x = values(rows * stride, 7 + n as u64);
        let inputs: Vec<Vec<f64>> = (0..rows).map(|r| row_f64(&x, r, n, stride)).collect();
        let mut y = x.clone();
        ffht::rows_inplace(&mut y, rows, n, stride).unwrap();
        let got: Vec<Vec<f64>> = (0..rows).map(|r| row_f64(&y, r, n, stride)).collect();
        check_all(&got, &inputs, DType::F32, 1.0 / (n as f64).sqrt()).unwrap();
        assert!(check_all(&got, &inputs, DType::F32, 1.0).is_err());
        // The gaps between rows are untouched.
        for r in 0..rows - 1 {
            assert_eq!(
                y[r * stride + n..(r + 1) * stride],
                x[r * stride + n..(r + 1) * stride]
            );
        }
        // src -> dst gives the same bits.
        let mut z = vec![0f32; rows * stride];
        ffht::rows_into(&x, stride, &mut z, stride, rows, n).unwrap();
        for r in 0..rows {
            assert_eq!(z[r * stride..][..n], y[r * stride..][..n]);
        }
    }
    assert!(ffht::rows_inplace(&mut [0f32; 12], 1, 12, 12).is_err());
}

#[test]
fn ggml_fwht_is_normalized_sylvester() {
    use quarot_ggml::{Context, DType as G, Runner};
    let (n, rows, stride) = (64usize, 3usize, 80usize);
    let x = values(rows * n, 3);
    let mut runner = Runner::new(1);
    for g in [G::F32, G::F16] {
        let ctx = Context::new(1 << 20);
        let base = ctx.tensor_2d(g, stride, rows);
        let view = ctx.view_2d(base, n, rows, stride * g.size(), 0);
        let inputs: Vec<Vec<f64>> = match g {
            G::F32 => {
                view.write(g, &x);
                rows_f64(&x, rows, n)
            }
            _ => {
                let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
                let bits: Vec<u16> = h.iter().map(|v| v.to_bits()).collect();
                view.write(g, &bits);
                (0..rows).map(|r| row_f64(&h, r, n, n)).collect()
            }
        };
        let y = ctx.fwht(view, None).unwrap();
        runner.compute(&ctx.graph(&[y])).unwrap();
        let got = rows_f64(&y.read_f32(), rows, n);
        check_all(&got, &inputs, DType::F32, 1.0).unwrap();
        assert!(check_all(&got, &inputs, DType::F32, (n as f64).sqrt()).is_err());
    }
}

#[test]
fn fht_cpu_is_unnormalized_sylvester() {
    let mut server = match FhtCpu::start() {
        Ok((s, _)) => s,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let (n, rows) = (64usize, 5usize);
    let x = values(rows * n, 11);
    let inputs: Vec<Vec<f64>> = [0, rows / 2, rows - 1]
        .iter()
        .map(|&r| row_f64(&x, r, n, n))
        .collect();
    for (op, stride) in [("inplace", n), ("copy", n), ("inplace", n + 16)] {
        server.setup(&x, n, rows, n, stride, op, 1).unwrap();
        let got: Vec<Vec<f64>> = server
            .check(n)
            .unwrap()
            .iter()
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect();
        check_all(&got, &inputs, DType::F32, 1.0 / (n as f64).sqrt()).unwrap();
        assert!(server.time(3).unwrap() > 0.0);
        server.free();
    }
}

#[test]
fn stream_loops() {
    let len = 131; // not a multiple of any vector width
    let x = values(len, 5);
    let mut a = x.clone();
    stream::inplace(&mut a);
    assert!(a.iter().zip(&x).all(|(p, q)| *p == -q));
    let mut d = vec![0f32; len];
    stream::into(&x, &mut d);
    assert_eq!(d, a);
    let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
    let mut hh = h.clone();
    stream::inplace(&mut hh);
    assert!(hh.iter().zip(&h).all(|(p, q)| *p == -*q));
    let mut hd = vec![f16::ZERO; len];
    stream::into(&h, &mut hd);
    assert_eq!(hd, hh);
    let b: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let mut w = vec![0f32; len];
    stream::into(&b, &mut w);
    assert!(w.iter().zip(&b).all(|(p, q)| *p == q.to_f32()));
}

#[test]
fn stats() {
    let s = Stats::of(&[3.0, 1.0, 2.0, 10.0]);
    assert_eq!((s.med, s.min, s.n), (2.5, 1.0, 4));
    let s = Stats::of(&[3.0, 1.0, 2.0]);
    assert_eq!((s.med, s.min), (2.0, 1.0));
}

#[test]
fn duo_runs_both_halves_on_two_threads() {
    use quarot_bench::duo::{Duo, SPIN};
    let duo = Duo::new(None);
    let me = std::thread::current().id();
    for round in 0..200 {
        if round == 100 {
            // Let the helper fall asleep: the next job must wake it.
            std::thread::sleep(SPIN * 5);
        }
        let mut v = vec![0u32; 1000];
        let (x, y) = v.split_at_mut(500);
        let mut other = None;
        duo.run(
            || x.iter_mut().for_each(|e| *e += 1),
            || {
                y.iter_mut().for_each(|e| *e += 2);
                other = Some(std::thread::current().id());
            },
        );
        assert!(v[..500].iter().all(|&e| e == 1) && v[500..].iter().all(|&e| e == 2));
        assert!(other.is_some_and(|t| t != me));
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        duo.run(|| {}, || panic!("b"))
    }));
    assert!(r.is_err());
    duo.run(|| {}, || {}); // still usable after a panic in the helper's job
}
