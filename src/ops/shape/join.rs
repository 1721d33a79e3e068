//! Joining: `where_cond` (one of two values by a mask), `concat` along an existing axis and
//! `stack` along a new one.

use std::rc::Rc;

use ndarray::{ArrayD, Axis, IxDyn};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::ops::{apply, check_axis};
use crate::tape::Var;
use crate::tape::op::{Context, Grads, Op};
use crate::value::{Value, broadcast_shape};

/// `a` where `cond` is true, `b` elsewhere; all three broadcast together.
#[derive(Debug, Clone)]
pub struct WhereCond(pub Rc<ArrayD<bool>>);

impl<F: Float> Op<F> for WhereCond {
    fn name(&self) -> &'static str {
        "where_cond"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let (cond, a, b) = (&*self.0, x[0].view(), x[1].view());
        let shape = broadcast_shape(cond.shape(), a.shape())
            .and_then(|s| broadcast_shape(&s, b.shape()))
            .ok_or_else(|| {
                Error::shape(
                    "where_cond",
                    &[cond.shape(), a.shape(), b.shape()],
                    "shapes that broadcast together",
                )
            })?;
        let dim = IxDyn(&shape);
        let (c, a, b) = (cond.broadcast(dim.clone()), a.broadcast(dim.clone()), b.broadcast(dim));
        let (c, a, b) = (c.expect("checked"), a.expect("checked"), b.expect("checked"));
        Ok(Value::from(
            ndarray::Zip::from(&c).and(&a).and(&b).map_collect(|&c, &a, &b| if c { a } else { b }),
        ))
    }
    // da = where(cond, gy, 0), db = where(cond, 0, gy)
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let zero = cx.tape().constant(F::zero());
        let da = cx.grad_if(0, || apply(self.clone(), [gy, zero]).sum_to(&cx.input_shape(0)));
        let db = cx.grad_if(1, || apply(self.clone(), [zero, gy]).sum_to(&cx.input_shape(1)));
        crate::grads![da, db]
    }
}

/// Joins values along an existing axis.
#[derive(Debug, Clone, Copy)]
pub struct Concat(pub usize);

impl<F: Float> Op<F> for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let views: Vec<_> = x.iter().map(|v| v.view()).collect();
        let shapes: Vec<&[usize]> = x.iter().map(|v| v.shape()).collect();
        check_axis("concat", self.0, shapes[0].len())?;
        let fits = shapes.iter().all(|s| {
            s.len() == shapes[0].len()
                && s.iter().zip(shapes[0]).enumerate().all(|(i, (a, b))| i == self.0 || a == b)
        });
        if !fits {
            let expected = format!("equal ranks and equal lengths on every axis but axis {}", self.0);
            return Err(Error::shape("concat", &shapes, expected));
        }
        let out = ndarray::concatenate(Axis(self.0), &views)
            .map_err(|e| Error::argument("concat", e.to_string()))?;
        Ok(Value::from(out))
    }
    // dxᵢ = gy[.., offsetᵢ..offsetᵢ + lenᵢ, ..]
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let mut start = 0;
        (0..cx.num_inputs())
            .map(|i| {
                let len = cx.input_shape(i)[self.0];
                start += len;
                cx.grad_if(i, || gy.narrow(self.0, start - len, len))
            })
            .collect()
    }
}

/// `a` where `cond` is true and `b` elsewhere, elementwise; `cond`, `a` and `b` broadcast
/// together. Gradients flow to the branch that was taken.
///
/// ```
/// use tapegrad::{where_cond, Tape};
/// let tape = Tape::<f64>::new();
/// let x = tape.var(vec![-1.0, 2.0, -3.0]);
/// let cond = x.to_array().mapv(|v| v > 0.0);
/// let y = where_cond(&cond, x, x * 10.0);
/// assert_eq!(y.to_array().into_raw_vec_and_offset().0, vec![-10.0, 2.0, -30.0]);
/// assert_eq!(y.sum().backward()[x].to_array().into_raw_vec_and_offset().0, vec![10.0, 1.0, 10.0]);
/// ```
#[track_caller]
pub fn where_cond<'t, F: Float>(cond: &ArrayD<bool>, a: Var<'t, F>, b: Var<'t, F>) -> Var<'t, F> {
    apply(WhereCond(Rc::new(cond.clone())), [a, b])
}

var_functions! {
/// Joins values along an existing axis; every other axis must match.
///
/// ```
/// use tapegrad::{concat, Tape};
/// let tape = Tape::<f64>::new();
/// let a = tape.var(ndarray::array![[1.0, 2.0]]);
/// let b = tape.var(ndarray::array![[3.0, 4.0], [5.0, 6.0]]);
/// let c = concat(&[a, b], 0);
/// assert_eq!(c.shape().as_slice(), &[3, 2]);
/// assert!(tapegrad::ops::shape::try_concat(&[a, b], 1).is_err());
/// ```
pub fn concat / try_concat(values: &[Var<'t, F>], axis: usize) -> Var<'t, F> {
    if values.is_empty() {
        return Err(Error::argument("concat", "no values to join"));
    }
    values[0].tape().record(Concat(axis), values)
}

/// Joins values of equal shape along a new axis at position `axis`.
///
/// ```
/// use tapegrad::{stack, Tape};
/// let tape = Tape::<f64>::new();
/// let (a, b) = (tape.var(vec![1.0, 2.0]), tape.var(vec![3.0, 4.0]));
/// assert_eq!(stack(&[a, b], 0).to_array(), ndarray::array![[1.0, 2.0], [3.0, 4.0]].into_dyn());
/// assert_eq!(stack(&[a, b], 1).to_array(), ndarray::array![[1.0, 3.0], [2.0, 4.0]].into_dyn());
/// ```
pub fn stack / try_stack(values: &[Var<'t, F>], axis: usize) -> Var<'t, F> {
    let first = values.first().ok_or_else(|| Error::argument("stack", "no values to join"))?.shape();
    if let Some(other) = values.iter().map(Var::shape).find(|s| *s != first) {
        return Err(Error::shape("stack", &[&first, &other], "values of equal shape"));
    }
    check_axis("stack", axis, first.len() + 1)?;
    let expanded: Result<Vec<_>> = values.iter().map(|v| v.try_unsqueeze(axis)).collect();
    try_concat(&expanded?, axis)
}
}

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::cases::*;
    vec![
        crate::case!("where_cond", masked(ANY), |x, p| where_cond(&p.mask(), x[0], x[1])),
        crate::case!("concat", joinable(ANY), |x, p| concat(x, p.ints[0])),
        crate::case!("stack", stackable(ANY), |x, p| stack(x, p.ints[0])),
    ]
}
