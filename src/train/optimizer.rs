//! SGD and Adam with PyTorch's update rules, written over named tensors so their
//! state (momentum, moments) is saved with every checkpoint and a resumed run
//! continues exactly where it stopped (tch's optimisers cannot save their state).

use crate::config::OptimizerKind;
use std::collections::BTreeMap;
use tch::{no_grad, Tensor};

/// One parameter group: names of the variables it updates and its learning rate.
#[derive(Debug)]
pub struct ParamGroup {
    pub name: String,
    pub params: Vec<(String, Tensor)>,
    /// Learning rate at schedule factor 1.
    pub base_lr: f64,
}

/// The optimiser: groups, hyper-parameters and per-parameter state.
pub struct Optimizer {
    kind: OptimizerKind,
    groups: Vec<ParamGroup>,
    momentum: f64,
    weight_decay: f64,
    betas: (f64, f64),
    eps: f64,
    /// Steps taken (Adam's bias correction).
    step: i64,
    /// State tensors by `"<param>.<slot>"` (slot: momentum, exp_avg, exp_avg_sq).
    state: BTreeMap<String, Tensor>,
}

impl Optimizer {
    /// An optimiser over `groups`; `momentum` is SGD's, Adam uses betas (0.9, 0.999), eps 1e-8.
    pub fn new(
        kind: OptimizerKind,
        groups: Vec<ParamGroup>,
        momentum: f64,
        weight_decay: f64,
    ) -> Self {
        Optimizer {
            kind,
            groups,
            momentum,
            weight_decay,
            betas: (0.9, 0.999),
            eps: 1e-8,
            step: 0,
            state: BTreeMap::new(),
        }
    }

    /// Clears every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for g in &mut self.groups {
            for (_, p) in &mut g.params {
                if p.grad().defined() {
                    let _ = p.grad().zero_();
                }
            }
        }
    }

    /// Divides every gradient by `scale` (mixed precision's loss scale, see
    /// `train::loss_scale`); true when they are all finite afterwards.
    pub fn unscale_gradients(&mut self, scale: f64) -> bool {
        let mut finite = true;
        no_grad(|| {
            for g in &mut self.groups {
                for (_, p) in &mut g.params {
                    let mut grad = p.grad();
                    if grad.defined() {
                        let _ = grad.g_div_scalar_(scale);
                        finite &= grad.isfinite().all().int64_value(&[]) == 1;
                    }
                }
            }
        });
        finite
    }

    /// Applies one update with each group's learning rate × `lr_factor` (the schedule).
    /// Parameters without a gradient (frozen) are left alone, as in PyTorch.
    pub fn step(&mut self, lr_factor: f64) {
        self.step += 1;
        let (b1, b2) = self.betas;
        no_grad(|| {
            for g in &self.groups {
                let lr = g.base_lr * lr_factor;
                for (name, p) in &g.params {
                    let grad = p.grad();
                    if !grad.defined() {
                        continue;
                    }
                    let mut d = if self.weight_decay != 0.0 {
                        &grad + p * self.weight_decay
                    } else {
                        grad.shallow_clone()
                    };
                    match self.kind {
                        OptimizerKind::Sgd => {
                            if self.momentum != 0.0 {
                                let key = format!("{name}.momentum");
                                let buf = match self.state.get_mut(&key) {
                                    Some(buf) => {
                                        let _ = buf.g_mul_scalar_(self.momentum).g_add_(&d);
                                        buf.shallow_clone()
                                    }
                                    None => {
                                        let buf = d.detach().copy();
                                        self.state.insert(key, buf.shallow_clone());
                                        buf
                                    }
                                };
                                d = buf;
                            }
                            let mut p = p.shallow_clone();
                            let _ = p.g_add_(&(d * (-lr)));
                        }
                        OptimizerKind::Adam => {
                            let m = self
                                .state
                                .entry(format!("{name}.exp_avg"))
                                .or_insert_with(|| p.zeros_like());
                            let _ = m.g_mul_scalar_(b1).g_add_(&(&d * (1.0 - b1)));
                            let m = m.shallow_clone();
                            let v = self
                                .state
                                .entry(format!("{name}.exp_avg_sq"))
                                .or_insert_with(|| p.zeros_like());
                            let _ = v.g_mul_scalar_(b2).g_add_(&(d.square() * (1.0 - b2)));
                            let v = v.shallow_clone();
                            let bc1 = 1.0 - b1.powi(self.step as i32);
                            let bc2 = 1.0 - b2.powi(self.step as i32);
                            let denom = (v / bc2).sqrt() + self.eps;
                            let mut p = p.shallow_clone();
                            let _ = p.g_add_(&(m / denom * (-lr / bc1)));
                        }
                    }
                }
            }
        });
    }

    /// The learning rate of each group at schedule factor `lr_factor`.
    pub fn learning_rates(&self, lr_factor: f64) -> Vec<(String, f64)> {
        self.groups
            .iter()
            .map(|g| (g.name.clone(), g.base_lr * lr_factor))
            .collect()
    }

    /// State to save: the tensors plus the step count (as a 1-element tensor).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .state
            .iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect();
        out.push(("__step".into(), Tensor::from_slice(&[self.step])));
        out
    }

    /// Restores what [`Optimizer::state`] saved.
    pub fn load_state(&mut self, saved: Vec<(String, Tensor)>) {
        self.state.clear();
        for (k, v) in saved {
            if k == "__step" {
                self.step = v.int64_value(&[0]);
            } else {
                self.state.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// Minimises ½‖x − target‖² for a few steps; returns the trajectory of x[0].
    fn run(kind: OptimizerKind, momentum: f64, wd: f64, lr: f64, steps: usize) -> Vec<f64> {
        tch::set_num_threads(1);
        let x = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let target = Tensor::from_slice(&[0.5f64, 0.5]);
        let mut opt = Optimizer::new(
            kind,
            vec![ParamGroup {
                name: "g".into(),
                params: vec![("x".into(), x.shallow_clone())],
                base_lr: lr,
            }],
            momentum,
            wd,
        );
        let mut out = Vec::new();
        for _ in 0..steps {
            opt.zero_grad();
            let loss = (&x - &target).square().sum(Kind::Double) * 0.5;
            loss.backward();
            opt.step(1.0);
            out.push(x.double_value(&[0]));
        }
        out
    }

    #[test]
    fn unscaling_divides_the_gradients_and_spots_overflow() {
        let x = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let group = |x: &Tensor| ParamGroup {
            name: "x".into(),
            params: vec![("x".into(), x.shallow_clone())],
            base_lr: 0.1,
        };
        let mut opt = Optimizer::new(OptimizerKind::Sgd, vec![group(&x)], 0.0, 0.0);
        (&x * 1024.0).sum(tch::Kind::Float).backward();
        assert!(opt.unscale_gradients(1024.0));
        assert_eq!(Vec::<f32>::try_from(&x.grad()).unwrap(), vec![1.0, 1.0]);
        opt.zero_grad();
        (&x * (f32::MAX as f64) * 4.0)
            .sum(tch::Kind::Float)
            .backward();
        assert!(
            !opt.unscale_gradients(2.0),
            "an infinite gradient is reported"
        );
    }

    #[test]
    fn sgd_with_momentum_follows_pytorch() {
        // grad = x − 0.5; torch: buf = g (first step), then buf = μ·buf + g; x −= lr·buf.
        let traj = run(OptimizerKind::Sgd, 0.9, 0.0, 0.1, 2);
        let (mut x, mut buf) = (1.0f64, 0.0f64);
        for (i, got) in traj.iter().enumerate() {
            let g = x - 0.5;
            buf = if i == 0 { g } else { 0.9 * buf + g };
            x -= 0.1 * buf;
            assert!((got - x).abs() < 1e-12, "step {i}: {got} vs {x}");
        }
    }

    #[test]
    fn adam_with_weight_decay_follows_pytorch() {
        let traj = run(OptimizerKind::Adam, 0.0, 0.01, 0.05, 3);
        let (mut x, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
        for (t, got) in traj.iter().enumerate() {
            let g = (x - 0.5) + 0.01 * x;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            let (bc1, bc2) = (
                1.0 - 0.9f64.powi(t as i32 + 1),
                1.0 - 0.999f64.powi(t as i32 + 1),
            );
            x -= 0.05 / bc1 * m / ((v / bc2).sqrt() + 1e-8);
            assert!((got - x).abs() < 1e-12, "step {t}: {got} vs {x}");
        }
    }

    #[test]
    fn saved_state_resumes_the_same_trajectory() {
        tch::set_num_threads(1);
        let make = || Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let group = |x: &Tensor| {
            vec![ParamGroup {
                name: "g".into(),
                params: vec![("x".into(), x.shallow_clone())],
                base_lr: 0.1,
            }]
        };
        let step = |opt: &mut Optimizer, x: &Tensor| {
            opt.zero_grad();
            (x.square().sum(Kind::Double)).backward();
            opt.step(1.0);
        };
        let x = make();
        let mut opt = Optimizer::new(OptimizerKind::Adam, group(&x), 0.0, 0.0);
        for _ in 0..4 {
            step(&mut opt, &x);
        }
        // Stop after 2 steps, save, restore into a fresh optimiser, continue.
        let y = make();
        let mut first = Optimizer::new(OptimizerKind::Adam, group(&y), 0.0, 0.0);
        step(&mut first, &y);
        step(&mut first, &y);
        let saved: Vec<(String, Tensor)> = first
            .state()
            .into_iter()
            .map(|(k, v)| (k, v.copy()))
            .collect();
        let mut second = Optimizer::new(OptimizerKind::Adam, group(&y), 0.0, 0.0);
        second.load_state(saved);
        step(&mut second, &y);
        step(&mut second, &y);
        assert_eq!(x.double_value(&[0]), y.double_value(&[0]));
    }
}
