//! Weight initialisers, drawn from a caller's seeded random generator so runs reproduce.

use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::float::Float;

/// How to draw a weight. The fans are read from its shape: a matrix `(fan_in, fan_out)` (the
/// layout of [`Linear`](super::Linear)); a convolution weight `[O, I, KH, KW]` (PyTorch's layout)
/// has `fan_in = I·KH·KW` and `fan_out = O·KH·KW`, as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Normal with mean 0 and this standard deviation (the textbook's `0.01`).
    Normal(f64),
    /// Uniform on `[-a, a]`.
    Uniform(f64),
    /// Xavier/Glorot: normal with `std = √(2 / (fan_in + fan_out))`, for tanh and sigmoid.
    Xavier,
    /// He/Kaiming: normal with `std = √(2 / fan_in)`, for ReLU.
    He,
    /// Uniform on `±1/√fan_in`: PyTorch's default for `Linear` and `Conv2d` weights (its
    /// `kaiming_uniform_` with `a = √5`).
    PyTorchDefault,
    /// All zeros.
    Zeros,
}

impl Init {
    /// Draws an array of `shape`; the fans are its first and last axes for a matrix, and as in
    /// PyTorch for a convolution weight `[O, I, KH, KW]`.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use tapegrad::nn::Init;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    /// let w = Init::He.sample::<f64>(&[400, 300], &mut rng);
    /// let std = (w.mapv(|v| v * v).mean().unwrap()).sqrt();
    /// assert!((std - (2.0f64 / 400.0).sqrt()).abs() < 0.002);
    /// ```
    ///
    /// Panics, at the caller's line, if the standard deviation of [`Init::Normal`] or the bound
    /// of [`Init::Uniform`] is negative, NaN or infinite.
    #[track_caller]
    pub fn sample<F: Float>(&self, shape: &[usize], rng: &mut impl Rng) -> ArrayD<F> {
        let spread = match *self {
            Init::Normal(std) => Some(("Init::Normal", "std", std, "a finite standard deviation ≥ 0")),
            Init::Uniform(a) => Some(("Init::Uniform", "a", a, "a finite bound ≥ 0 (draws are in [−a, a])")),
            _ => None,
        };
        if let Some((name, what, given, expected)) = spread.filter(|s| !(s.2.is_finite() && s.2 >= 0.0)) {
            let message = format!("{what} = {given} for a weight of shape {shape:?}; expected {expected}");
            panic!("{}", crate::Error::argument(name, message));
        }
        if shape.contains(&0) {
            // NOTE: a fan of zero would make Xavier's and He's spread infinite; there is nothing
            // to draw anyway.
            return ArrayD::zeros(IxDyn(shape));
        }
        let (fan_in, fan_out) = match *shape {
            [] => (1, 1),
            [n] => (n, n),
            [rows, cols] => (rows, cols),
            [out, inputs, ref kernel @ ..] => {
                let taps = kernel.iter().product::<usize>();
                (inputs * taps, out * taps)
            }
        };
        let (fan_in, fan_out) = (fan_in as f64, fan_out as f64);
        let std = match *self {
            Init::Normal(std) => std,
            Init::Xavier => (2.0 / (fan_in + fan_out)).sqrt(),
            Init::He => (2.0 / fan_in).sqrt(),
            Init::Uniform(a) => return uniform(shape, a, rng),
            Init::PyTorchDefault => return uniform(shape, 1.0 / fan_in.sqrt(), rng),
            Init::Zeros => return ArrayD::zeros(IxDyn(shape)),
        };
        let normal = Normal::new(0.0, std).expect("a finite, non-negative standard deviation");
        ArrayD::from_shape_fn(IxDyn(shape), |_| F::of(normal.sample(rng)))
    }
}

/// Uniform draws on `[-a, a]`.
fn uniform<F: Float>(shape: &[usize], a: f64, rng: &mut impl Rng) -> ArrayD<F> {
    let uniform = Uniform::new_inclusive(-a, a).expect("a finite bound");
    ArrayD::from_shape_fn(IxDyn(shape), |_| F::of(uniform.sample(rng)))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::Init;

    /// A convolution weight `[O, I, KH, KW]` has `fan_in = I·KH·KW`, as in PyTorch: `[64, 8, 3, 3]`
    /// has fan_in 72, so He's spread is √(2/72) = 1/6 and PyTorch's default bound 1/√72.
    #[test]
    fn convolution_weights_take_pytorchs_fans() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let w = Init::He.sample::<f64>(&[64, 8, 3, 3], &mut rng);
        let std = w.mapv(|v| v * v).mean().unwrap().sqrt();
        assert!((std - 1.0 / 6.0).abs() < 0.005, "{std}");
        let w = Init::PyTorchDefault.sample::<f64>(&[64, 8, 3, 3], &mut rng);
        let bound = 1.0 / 72f64.sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > 0.95 * bound));
    }
}
