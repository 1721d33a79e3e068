//! Matrix products: 2-D·2-D, batched 3-D (with a 2-D operand broadcast over the batch), and
//! through reshaping 1-D·2-D, 2-D·1-D and the dot product 1-D·1-D.
//!
//! The primitive carries transpose flags, so the backward products `gy·Bᵀ` and `Aᵀ·gy` read
//! their operands through strided views instead of copying a transpose. The products run in
//! `kernels::gemm`.

use ndarray::{Array3, ArrayView2, Axis, Ix2};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::gemm::{self, general_mat_mul};
use crate::kernels::{buffers, for_each_row};
use crate::ops::try_apply;
use crate::tape::Var;
use crate::tape::op::{Context, Grads, Op};
use crate::value::Value;

/// `op(A)·op(B)` where `op` transposes the last two axes when the flag is set. Operands are 2-D
/// or 3-D (a batch); a 2-D operand is shared by every matrix of a 3-D one.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatMul {
    /// Transpose `A`.
    pub ta: bool,
    /// Transpose `B`.
    pub tb: bool,
}

impl<F: Float> Op<F> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn label(&self) -> String {
        format!("matmul{}{}", if self.ta { " Aᵀ" } else { "" }, if self.tb { " Bᵀ" } else { "" })
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let (a, b) = (x[0].view(), x[1].view());
        let (sa, sb) = (a.shape(), b.shape());
        let fits = matches!((sa.len(), sb.len()), (2 | 3, 2 | 3));
        let dims = |s: &[usize], t: bool| {
            let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
            if t { (c, r) } else { (r, c) }
        };
        if !fits {
            return Err(Error::shape(
                "matmul",
                &[sa, sb],
                "2-D or 3-D operands ([m, k]·[k, n] or batches [b, m, k]·[b, k, n])",
            ));
        }
        let ((m, k), (k2, n)) = (dims(sa, self.ta), dims(sb, self.tb));
        if k != k2 {
            let expected = format!("[m, k]·[k, n] with equal k ({k} ≠ {k2})");
            return Err(Error::shape("matmul", &[sa, sb], expected));
        }
        if sa.len() == 2 && sb.len() == 2 {
            return product("matmul", matrix(a, self.ta), matrix(b, self.tb));
        }
        let batch = |s: &[usize]| if s.len() == 3 { Some(s[0]) } else { None };
        let nb = match (batch(sa), batch(sb)) {
            (Some(p), Some(q)) if p != q => {
                let expected = format!("equal batch sizes ({p} ≠ {q})");
                return Err(Error::shape("matmul", &[sa, sb], expected));
            }
            (p, q) => p.or(q).expect("one operand is 3-D"),
        };
        let len = buffers::elements::<F>("matmul", &[nb, m, n])?;
        let zeros = buffers::try_zeros("matmul", len)?;
        let mut out = Array3::from_shape_vec((nb, m, n), zeros).expect("nb·m·n zeros");
        for (i, mut c) in out.axis_iter_mut(Axis(0)).enumerate() {
            general_mat_mul(F::one(), &at(&a, i, self.ta), &at(&b, i, self.tb), F::zero(), &mut c);
        }
        Ok(Value::from(out))
    }
    // Y = A·B: dA = gy·Bᵀ, dB = Aᵀ·gy (with the flags: the same identities, transposed to fit)
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let (a, b) = (cx.input(0), cx.input(1));
        let mm = |x: Var<'a, F>, y: Var<'a, F>, ta, tb| crate::ops::apply(MatMul { ta, tb }, [x, y]);
        let da = cx.grad_if(0, || {
            let d = if self.ta { mm(b, gy, self.tb, true) } else { mm(gy, b, false, !self.tb) };
            d.sum_to(&cx.input_shape(0))
        });
        let db = cx.grad_if(1, || {
            let d = if self.tb { mm(gy, a, true, self.ta) } else { mm(a, gy, !self.ta, false) };
            d.sum_to(&cx.input_shape(1))
        });
        crate::grads![da, db]
    }
}

/// `a·b` as a value; an error naming `op` when it is too large to hold.
fn product<F: Float>(op: &'static str, a: ArrayView2<'_, F>, b: ArrayView2<'_, F>) -> Result<Value<F>> {
    let (m, n) = (a.nrows(), b.ncols());
    Ok(Value::from_buffer(&[m, n], gemm::matmul(op, a, b)?))
}

/// Matrix `i` of a batch (or the one matrix of a 2-D operand), transposed when `t`.
fn at<'v, F: Float>(v: &'v ndarray::ArrayViewD<'_, F>, i: usize, t: bool) -> ArrayView2<'v, F> {
    let m = if v.ndim() == 3 { v.index_axis(Axis(0), i) } else { v.view() };
    matrix(m, t)
}

/// A 2-D view, transposed when `t`.
fn matrix<F: Float>(v: ndarray::ArrayViewD<'_, F>, t: bool) -> ArrayView2<'_, F> {
    let v = v.into_dimensionality::<Ix2>().expect("2-D");
    if t { v.reversed_axes() } else { v }
}

var_methods! {
    /// The matrix product, NumPy's `@`: `[m, k]·[k, n] → [m, n]`; batches
    /// `[b, m, k]·[b, k, n] → [b, m, n]` (either side may be a single 2-D matrix shared by the
    /// batch); `[k]·[k, n] → [n]`, `[m, k]·[k] → [m]` and the dot product `[k]·[k] → []`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// use ndarray::array;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(array![[1.0, 2.0], [3.0, 4.0]]);
    /// let b = tape.var(array![[5.0], [6.0]]);
    /// let y = a.matmul(b);
    /// assert_eq!(y.to_array(), array![[17.0], [39.0]].into_dyn());
    /// let g = y.sum().backward();
    /// assert_eq!(g[a].to_array(), array![[5.0, 6.0], [5.0, 6.0]].into_dyn()); // gy·Bᵀ
    /// assert_eq!(g[b].to_array(), array![[4.0], [6.0]].into_dyn());           // Aᵀ·gy
    ///
    /// let e = a.try_matmul(tape.var(ndarray::Array2::<f64>::zeros((3, 2)))).unwrap_err();
    /// assert_eq!(e.to_string(), "matmul: got shapes [2, 2] and [3, 2], expected [m, k]·[k, n] with equal k (2 ≠ 3)");
    /// ```
    pub fn matmul / try_matmul(self, other: Self) -> Self {
        let (sa, sb) = (self.shape(), other.shape());
        check_ranks(&sa, &sb)?;
        let (ra, rb) = (sa.len(), sb.len());
        if ra == 1 || rb == 1 {
            let (ka, kb) = (sa[ra - 1], if rb == 1 { sb[0] } else { sb[rb - 2] });
            if ka != kb {
                let expected = format!("a shared inner dimension k ([.., k]·[k, ..]), got {ka} ≠ {kb}");
                return Err(Error::shape("matmul", &[&sa, &sb], expected));
            }
        }
        match (ra, rb) {
            (1, 1) => {
                let y = try_apply(MatMul::default(), [self.try_unsqueeze(0)?, other.try_unsqueeze(1)?])?;
                y.try_reshape(&[])
            }
            (1, _) => try_apply(MatMul::default(), [self.try_unsqueeze(0)?, other])?.try_squeeze(ra + rb - 3),
            (_, 1) => try_apply(MatMul::default(), [self, other.try_unsqueeze(1)?])?.try_squeeze(ra + rb - 2),
            _ => try_apply(MatMul::default(), [self, other]),
        }
    }
}

/// Checks the ranks `matmul` takes before vectors are reshaped into matrices, so that an error
/// shows the caller's shapes.
fn check_ranks(sa: &[usize], sb: &[usize]) -> Result<()> {
    if (1..=3).contains(&sa.len()) && (1..=3).contains(&sb.len()) {
        return Ok(());
    }
    let expected = "operands of rank 1 to 3 (vectors, matrices [m, k] or batches [b, m, k]); a 0-D value \
                    multiplies with *";
    Err(Error::shape("matmul", &[sa, sb], expected))
}

/// The affine map `x·W + b` of a batch `x` `(n, inputs)`, weights `W` `(inputs, outputs)` and
/// bias `b` `(outputs,)`, in one op: the bias is added into the product's storage, with no
/// separate node and array for `x·W`. A large output (a read-out over 10,000 words) gets its
/// bias inside the product instead, as one more row of `W` against a column of ones, and the
/// gradients of `W` and `b` as one product: no pass over the output or its gradient for the
/// bias.
#[derive(Debug, Clone, Copy)]
pub struct Affine;

impl<F: Float> Op<F> for Affine {
    fn name(&self) -> &'static str {
        "affine"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let (input, weight, bias) = (x[0].view(), x[1].view(), x[2].view());
        let fits = input.ndim() == 2
            && weight.ndim() == 2
            && bias.ndim() == 1
            && input.shape()[1] == weight.shape()[0]
            && weight.shape()[1] == bias.shape()[0];
        if !fits {
            let expected = "x (n, inputs), W (inputs, outputs) and b (outputs,)";
            return Err(Error::shape("affine", &[input.shape(), weight.shape(), bias.shape()], expected));
        }
        let (n, inputs, outputs) = (input.shape()[0], input.shape()[1], bias.len());
        let bias = bias.as_standard_layout();
        let bias = bias.as_slice().expect("standard layout");
        if folds_bias(n, inputs, outputs) {
            // [x | 1]·[W ; b]: the bias is each sum's last term, no pass over the output
            let (input, weight) = (input.as_standard_layout(), weight.as_standard_layout());
            let mut ones =
                buffers::try_buffer("affine", buffers::elements::<F>("affine", &[n, inputs + 1])?)?;
            for row in input.as_slice().expect("standard layout").chunks_exact(inputs) {
                ones.extend_from_slice(row);
                ones.push(F::one());
            }
            let mut stacked = buffers::buffer((inputs + 1) * outputs);
            stacked.extend_from_slice(weight.as_slice().expect("standard layout"));
            stacked.extend_from_slice(bias);
            let x1 = ArrayView2::from_shape((n, inputs + 1), &ones[..]).expect("n·(inputs + 1)");
            let w1 =
                ArrayView2::from_shape((inputs + 1, outputs), &stacked[..]).expect("(inputs + 1)·outputs");
            let out = product("affine", x1, w1)?;
            buffers::recycle(ones);
            buffers::recycle(stacked);
            return Ok(out);
        }
        let mut out = product("affine", matrix(input, false), matrix(weight, false))?;
        let mut view = out.view_mut();
        let values = view.as_slice_mut().expect("a fresh product");
        for_each_row(values, outputs, |row| row.iter_mut().zip(bias).for_each(|(y, &b)| *y += b));
        Ok(out)
    }
    // dx = gy·Wᵀ, dW = xᵀ·gy, db = Σ gy over the batch
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let mm = |x: Var<'a, F>, y: Var<'a, F>, ta, tb| crate::ops::apply(MatMul { ta, tb }, [x, y]);
        let dx = cx.grad_if(0, || mm(gy, cx.input(1), false, true));
        let (x, shape, outputs) = (cx.input(0), cx.input_shape(0), cx.input_shape(2)[0]);
        let (n, inputs) = (shape[0], shape[1]);
        if cx.needs_grad(1) && cx.needs_grad(2) && folds_bias(n, inputs, outputs) {
            // [dW ; db] = [x | 1]ᵀ·gy: the bias gradient is the product's last row, no pass over gy
            let ones = x.tape().constant(ndarray::Array2::ones((n, 1)));
            let both = mm(crate::ops::shape::concat(&[x, ones], 1), gy, true, false);
            return crate::grads![
                dx,
                both.narrow(0, 0, inputs),
                both.narrow(0, inputs, 1).reshape(&[outputs])
            ];
        }
        let dw = cx.grad_if(1, || mm(cx.input(0), gy, true, false));
        let db = cx.grad_if(2, || gy.sum_axes(&[0], false));
        crate::grads![dx, dw, db]
    }
}

/// Whether `affine` adds the bias inside the product, as one more row of weights against a
/// column of ones: when the output (`n·outputs`, the pass over it saved) is more than twice
/// what the stacked copies hold (`(inputs + 1)·(n + outputs)`). The language model's read-out,
/// `[700, 100]` to 10,000 words, does; an MLP's layers on a batch of 100 do not.
fn folds_bias(n: usize, inputs: usize, outputs: usize) -> bool {
    inputs > 0 && n.saturating_mul(outputs) > (2 * (inputs + 1)).saturating_mul(n.saturating_add(outputs))
}

var_methods! {
    /// `x·W + b` for a batch `x` of shape `(n, inputs)`, `W` of `(inputs, outputs)` and `b` of
    /// `(outputs,)`: a fully connected layer in one op.
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(array![[1.0, 2.0]]);
    /// let (w, b) = (tape.var(array![[1.0, 0.0], [0.5, 2.0]]), tape.var(array![0.5, -1.0]));
    /// let y = x.affine(w, b);
    /// assert_eq!(y.to_array(), array![[2.5, 3.0]].into_dyn());
    /// let g = y.sum().backward();
    /// assert_eq!(g[w].to_array(), array![[1.0, 1.0], [2.0, 2.0]].into_dyn());
    /// assert_eq!(g[b].to_array(), array![1.0, 1.0].into_dyn());
    /// ```
    pub fn affine / try_affine(self, weight: Self, bias: Self) -> Self {
        try_apply(Affine, [self, weight, bias])
    }
}

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::cases::*;
    vec![
        crate::case!("matmul", matmul_operands(ANY), |x, p| {
            crate::ops::apply(MatMul { ta: p.ints[0] == 1, tb: p.ints[1] == 1 }, [x[0], x[1]])
        }),
        crate::case!("matmul_vectors", vector_operands(ANY), |x, _p| x[0].matmul(x[1])),
        crate::case!("affine", affine_operands(ANY), |x, _p| x[0].affine(x[1], x[2])),
        crate::case!("affine_bias_folded", affine_folded_operands(ANY), |x, _p| x[0].affine(x[1], x[2])),
    ]
}

#[cfg(test)]
mod tests {
    use crate::Tape;

    /// A read-out large enough to add its bias inside the product gives the bits of the product
    /// and then the bias (each sum's last term is the bias either way), and the gradients of
    /// `matmul` then `+`.
    #[test]
    fn a_bias_folded_into_the_product_gives_the_same_values() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut random = |shape: &[usize]| {
            ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(shape), |_| rng.random::<f32>() - 0.5)
        };
        assert!(super::folds_bias(700, 100, 2000) && !super::folds_bias(100, 784, 50));
        let tape = Tape::<f32>::new();
        let (x, w, b) =
            (tape.var(random(&[700, 100])), tape.var(random(&[100, 2000])), tape.var(random(&[2000])));
        let weights = tape.constant(random(&[700, 2000]));
        let (folded, apart) = (x.affine(w, b), x.matmul(w) + b);
        assert_eq!(folded.to_array(), apart.to_array());
        let (g, h) = ((folded * weights).sum().backward(), (apart * weights).sum().backward());
        for v in [x, w, b] {
            let (g, h) = (g[v].to_array(), h[v].to_array());
            let scale = h.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(g.iter().zip(&h).all(|(a, b)| (a - b).abs() <= 1e-5 * scale), "{:?}", v.shape());
        }
    }

    /// Vectors are reshaped into matrices inside `matmul`; errors show the shapes as passed.
    #[test]
    fn matmul_errors_show_the_callers_shapes() {
        let tape = Tape::<f64>::new();
        let (s, v) = (tape.var(2.0), tape.var(vec![1.0, 2.0, 3.0]));
        let batch4 = tape.var(ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[2, 2, 3, 2])));
        let expected = "expected operands of rank 1 to 3 (vectors, matrices [m, k] or batches [b, m, k]); \
                        a 0-D value multiplies with *";
        for (a, b, shapes) in [
            (s, v, "[] and [3]"),
            (v, s, "[3] and []"),
            (v, batch4, "[3] and [2, 2, 3, 2]"),
            (batch4, v, "[2, 2, 3, 2] and [3]"),
        ] {
            let e = a.try_matmul(b).unwrap_err().to_string();
            assert_eq!(e, format!("matmul: got shapes {shapes}, {expected}"));
        }
    }
}
