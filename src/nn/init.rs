//! Weight initialisers, drawn from a caller's seeded random generator so runs reproduce.

use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::float::Float;

/// How to draw a weight matrix of shape `(fan_in, fan_out)`.
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
    /// All zeros.
    Zeros,
}

impl Init {
    /// Draws an array of `shape`; the fans are its first and last axes.
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
        let fan_in = shape.first().copied().unwrap_or(1) as f64;
        let fan_out = shape.last().copied().unwrap_or(1) as f64;
        let std = match *self {
            Init::Normal(std) => std,
            Init::Xavier => (2.0 / (fan_in + fan_out)).sqrt(),
            Init::He => (2.0 / fan_in).sqrt(),
            Init::Uniform(a) => {
                let uniform = Uniform::new_inclusive(-a, a).expect("a finite bound");
                return ArrayD::from_shape_fn(IxDyn(shape), |_| F::of(uniform.sample(rng)));
            }
            Init::Zeros => return ArrayD::zeros(IxDyn(shape)),
        };
        let normal = Normal::new(0.0, std).expect("a finite, non-negative standard deviation");
        ArrayD::from_shape_fn(IxDyn(shape), |_| F::of(normal.sample(rng)))
    }
}
