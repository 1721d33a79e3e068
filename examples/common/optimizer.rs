//! The optimizer an example's command line chooses by name (`--optimizer adam`): each of
//! `tapegrad::optim`'s, with the settings its constructor gives.

use tapegrad::optim::{AdaGrad, Adam, Momentum, Optimizer, RmsProp, Sgd};
use tapegrad::{Float, Param};

/// The optimizers, as `--optimizer` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerName {
    /// Stochastic gradient descent
    Sgd,
    /// SGD with momentum 0.9
    Momentum,
    /// SGD with Nesterov's momentum 0.9
    Nesterov,
    /// AdaGrad
    Adagrad,
    /// RMSProp, decay 0.99
    Rmsprop,
    /// Adam, betas 0.9 and 0.999
    Adam,
    /// Adam with decoupled weight decay 0.01 (AdamW)
    Adamw,
}

/// The optimizer `name` over `params`, with learning rate `lr`.
pub fn optimizer<F: Float>(name: OptimizerName, params: Vec<Param>, lr: f64) -> Box<dyn Optimizer<F>> {
    match name {
        OptimizerName::Sgd => Box::new(Sgd::new(params, lr)),
        OptimizerName::Momentum => Box::new(Momentum::new(params, lr)),
        OptimizerName::Nesterov => Box::new(Momentum::nesterov(params, lr)),
        OptimizerName::Adagrad => Box::new(AdaGrad::new(params, lr)),
        OptimizerName::Rmsprop => Box::new(RmsProp::new(params, lr)),
        OptimizerName::Adam => Box::new(Adam::new(params, lr)),
        OptimizerName::Adamw => Box::new(Adam::adamw(params, lr, 1e-2)),
    }
}
