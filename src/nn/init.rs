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
    pub fn sample<F: Float>(&self, shape: &[usize], rng: &mut impl Rng) -> ArrayD<F> {
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
