//! Data-parallel training on threads: 2 workers at global batch B end with the parameters of
//! one plain training loop at batch B (no communicator at all), for the MLP and SimpleConvNet,
//! in f32 and f64; and a failing, mismatched or early-returning worker gives an error naming its
//! rank instead of a hang.

use rand::SeedableRng;
use tapegrad::nn::{self, Activation, Init, Mlp};
use tapegrad::parallel::{self, Communicator, ParallelError};
use tapegrad::state::StateDict;
use tapegrad::{Float, Tape};

#[path = "common/training.rs"]
mod training;

use training::{Build, data_parallel, mlp, plain, simple_conv_net};

/// The largest difference between two states relative to the largest magnitude of each tensor.
fn relative_difference<F: Float>(a: &StateDict<F>, b: &StateDict<F>) -> f64 {
    assert_eq!(a.names(), b.names());
    a.names()
        .into_iter()
        .map(|name| {
            let (x, y) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
            let scale = x.iter().fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
            x.iter().zip(y).fold(0.0f64, |m, (p, q)| m.max((p.as_f64() - q.as_f64()).abs() / scale))
        })
        .fold(0.0, f64::max)
}

fn check<F: Float>(build: Build<F>, batch: usize, tolerance: f64) {
    let one = plain(build, batch);
    let replicas = data_parallel(build, batch, 2);
    assert_eq!(replicas[0], replicas[1], "the replicas are identical, bit for bit");
    let difference = relative_difference(&one, &replicas[0]);
    println!("{} batch {batch}: relative difference {difference:.2e}", F::NAME);
    assert!(difference < tolerance, "{difference:e}");
    // the steps moved the weights well beyond the tolerance: the comparison is not of untouched ones
    let tape = Tape::<F>::new();
    let initial = nn::state_dict(&tape, &build(&tape, 3)).unwrap();
    assert!(relative_difference(&one, &initial) > 1e-2);
}

#[test]
fn two_workers_match_one_plain_loop_for_the_mlp() {
    check::<f32>(mlp, 64, 1e-6);
    check::<f64>(mlp, 64, 1e-12);
    // an odd batch: shards of 33 and 32, weighted by their sizes
    check::<f64>(mlp, 65, 1e-12);
}

#[test]
fn two_workers_match_one_plain_loop_for_simple_conv_net() {
    check::<f32>(simple_conv_net, 32, 1e-6);
    check::<f64>(simple_conv_net, 32, 1e-12);
}

#[test]
fn the_thread_all_reduce_adds_in_rank_order_and_agrees_everywhere() {
    let out = parallel::run_threads(3, |comm| {
        // 1e16 + 1 − 1e16: the order of addition decides the answer
        let mut x = [[1e16, 1.0, -1e16][comm.rank()]];
        comm.all_reduce_sum(&mut x)?;
        let mut b = [comm.rank() as f32 + 10.0; 2];
        comm.broadcast(&mut b, 2)?;
        Ok((x[0], b))
    })
    .unwrap();
    assert_eq!(out, vec![(((1e16 + 1.0) - 1e16), [12.0, 12.0]); 3]);
}

#[test]
fn a_worker_that_panics_or_fails_is_named_and_nobody_hangs() {
    let panicked = parallel::run_threads(2, |comm| {
        let mut x = [1.0f64];
        comm.all_reduce_sum(&mut x)?;
        if comm.rank() == 1 {
            panic!("the data ran out on this worker");
        }
        comm.all_reduce_sum(&mut x)?;
        Ok(())
    });
    assert_eq!(panicked.unwrap_err().to_string(), "worker 1 failed: the data ran out on this worker");

    let failed = parallel::run_threads(3, |comm| {
        if comm.rank() == 2 {
            return Err(ParallelError::Worker { rank: 2, message: "cannot read batch 7".into() });
        }
        comm.barrier()?;
        Ok(())
    });
    assert_eq!(failed.unwrap_err().to_string(), "worker 2 failed: cannot read batch 7");

    let early = parallel::run_threads(2, |comm| {
        if comm.rank() == 0 {
            comm.barrier()?;
        }
        Ok(())
    });
    assert_eq!(
        early.unwrap_err().to_string(),
        "worker 0 stopped in barrier: worker 1 returned without joining it"
    );

    let lengths = parallel::run_threads(2, |comm| {
        let mut x = vec![0.0f32; 3 + comm.rank()];
        comm.all_reduce_sum(&mut x)?;
        Ok(())
    });
    let e = lengths.unwrap_err().to_string();
    assert!(e.contains("all_reduce_sum with 3 values, but worker 1 passed 4"), "{e}");
}

#[test]
fn replicas_with_other_names_or_shapes_are_refused_at_the_start() {
    let e = parallel::run_threads(2, |comm| {
        let tape = Tape::<f32>::new();
        let sizes: &[usize] = if comm.rank() == 1 { &[4, 6, 2] } else { &[4, 5, 2] };
        let model =
            Mlp::new(&tape, sizes, Activation::Relu, Init::He, &mut rand::rngs::StdRng::seed_from_u64(1));
        parallel::sync_replicas(&comm, &tape, &model)?;
        Ok(())
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "worker 1's model differs from worker 0's: \"fc1.bias\" is f32 [6], expected f32 [5]; \"fc1.weight\" \
         is f32 [4, 6], expected f32 [4, 5]; \"fc2.weight\" is f32 [6, 2], expected f32 [5, 2]"
    );
    let synced = parallel::run_threads(2, |comm| {
        let tape = Tape::<f64>::new();
        let model = Mlp::new(
            &tape,
            &[3, 2],
            Activation::Relu,
            Init::He,
            &mut rand::rngs::StdRng::seed_from_u64(comm.rank() as u64),
        );
        parallel::sync_replicas(&comm, &tape, &model)?;
        Ok(nn::state_dict(&tape, &model)?)
    })
    .unwrap();
    assert_eq!(synced[0], synced[1], "rank 0's weights everywhere");
}

/// Steps of a linear model with momentum on this worker of `comm`, one per global batch size
/// in `sizes` (consecutive rows of a fixed data set), each worker taking its shard: the weight
/// and the bias afterwards. With `Single`, the plain loop.
fn linear_steps(comm: &impl Communicator, sizes: &[usize]) -> Result<Vec<f64>, ParallelError> {
    use ndarray::s;
    use tapegrad::nn::{Linear, Module};
    use tapegrad::optim::{Momentum, Optimizer};
    let x = ndarray::array![[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [-2.0, 1.0], [1.5, -0.5], [0.25, 2.0]];
    let y = ndarray::array![[1.0], [2.0], [0.0], [-1.0], [0.5], [3.0]];
    let tape = Tape::<f64>::new();
    let model = Linear::from_arrays(&tape, ndarray::array![[0.5], [-0.25]], ndarray::array![0.1]);
    let mut opt = Momentum::new(nn::params(&model), 0.1);
    let mut start = 0;
    for &batch in sizes {
        let mine = parallel::shard(batch, comm.rank(), comm.size());
        let rows = start + mine.start..start + mine.end;
        start += batch;
        let xs = tape.constant(x.slice(s![rows.clone(), ..]).to_owned());
        let ys = tape.constant(y.slice(s![rows, ..]).to_owned());
        let loss = nn::mean_squared_error(model.forward(xs), ys);
        let mut grads = loss.backward();
        parallel::all_reduce_gradients(comm, &tape, &nn::params(&model), &mut grads, mine.len())?;
        opt.step(&tape, &grads);
        tape.reset();
    }
    let (w, b) = (tape.get(model.weight).to_array(), tape.get(model.bias).to_array());
    Ok(w.iter().chain(b.iter()).copied().collect())
}

/// A global batch of 0 samples gives zero gradients on every worker, as the plain loop does
/// from an empty batch (momentum still moves the weights, the same on both); a batch of 1 on
/// 2 workers leaves one worker an empty shard, which adds nothing to the mean.
#[test]
fn an_empty_global_batch_or_shard_steps_as_the_plain_loop_does() {
    let sizes = [4, 0, 1, 0];
    let plain = linear_steps(&parallel::Single, &sizes).unwrap();
    assert!(plain.iter().all(|p| p.is_finite()), "{plain:?}");
    let moved = linear_steps(&parallel::Single, &sizes[..1]).unwrap();
    assert_ne!(plain, moved, "the steps after the first move the weights (momentum, one sample)");
    for workers in [2, 3] {
        let replicas = parallel::run_threads(workers, |comm| linear_steps(&comm, &sizes)).unwrap();
        for replica in &replicas {
            assert_eq!(replica, &replicas[0], "{workers} workers: the replicas are identical");
        }
        for (p, q) in replicas[0].iter().zip(&plain) {
            assert!(
                (p - q).abs() <= 1e-12 * q.abs().max(1.0),
                "{workers} workers: {:?} vs {plain:?}",
                replicas[0]
            );
        }
    }
}

#[test]
fn all_reduce_mean_with_no_weight_is_zero_and_a_bad_weight_is_refused_everywhere() {
    // weights 0 everywhere: zeros, even from values that are not finite
    let out = parallel::run_threads(2, |comm| {
        let mut x = [f64::NAN, 3.0, f64::INFINITY];
        comm.all_reduce_mean(&mut x, 0.0)?;
        Ok(x)
    })
    .unwrap();
    assert_eq!(out, vec![[0.0; 3]; 2]);
    // one worker of weight 0: the other's values, whatever the first held
    let out = parallel::run_threads(2, |comm| {
        let (mut x, weight) = if comm.rank() == 0 { ([f32::NAN, 1.0], 0.0) } else { ([2.0, -4.0], 3.0) };
        comm.all_reduce_mean(&mut x, weight)?;
        Ok(x)
    })
    .unwrap();
    assert_eq!(out, vec![[2.0, -4.0]; 2]);
    // a negative, NaN or infinite weight: every worker returns the error, naming the worker
    for (bad, shown) in [(-1.0, "-1"), (f64::NAN, "NaN"), (f64::INFINITY, "inf")] {
        let errors = parallel::run_threads(2, |comm| {
            let mut x = [1.0f64];
            let weight = if comm.rank() == 1 { bad } else { 1.0 };
            Ok(comm.all_reduce_mean(&mut x, weight).map_err(|e| e.to_string()).err())
        })
        .unwrap();
        let expected = format!(
            "all_reduce_mean: worker 1 passed the weight {shown}; expected a finite number ≥ 0 (the \
             worker's number of samples)"
        );
        assert_eq!(errors, [Some(expected.clone()), Some(expected)]);
    }
}

#[test]
fn run_threads_shard_and_broadcast_refuse_arguments_out_of_range() {
    let e = parallel::run_threads(0, |_| Ok(())).unwrap_err();
    assert!(matches!(e, ParallelError::Argument { op: "run_threads", .. }), "{e:?}");
    assert_eq!(e.to_string(), "run_threads: workers = 0; expected at least 1 worker");

    assert_eq!(
        parallel::try_shard(10, 0, 0).unwrap_err().to_string(),
        "shard: rank 0 of 0 workers; expected at least 1 worker"
    );
    assert_eq!(
        parallel::try_shard(10, 3, 2).unwrap_err().to_string(),
        "shard: rank 3 of 2 workers; expected a rank in 0..2"
    );
    assert_eq!(
        parallel::try_shard(usize::MAX, usize::MAX - 1, usize::MAX).unwrap(),
        usize::MAX - 1..usize::MAX
    );
    // the shards of every rank cover 0..n once, in order, sizes differing by at most one
    for n in 0..40 {
        for size in 1..9 {
            let shards: Vec<_> = (0..size).map(|rank| parallel::shard(n, rank, size)).collect();
            let rows: Vec<usize> = shards.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(rows, (0..n).collect::<Vec<_>>(), "n {n}, {size} workers");
            let lengths = shards.iter().map(|r| r.len());
            assert!(lengths.clone().max().unwrap() - lengths.min().unwrap() <= 1);
        }
    }

    let e = parallel::run_threads(2, |comm| {
        let mut x = [comm.rank() as f64];
        comm.broadcast(&mut x, 2)?;
        Ok(x)
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "worker 0 failed: broadcast: root 2; expected a rank in 0..2 (one per worker)");
    let e = parallel::Single.broadcast(&mut [1.0f32], 1).unwrap_err();
    assert_eq!(e.to_string(), "broadcast: root 1; expected a rank in 0..1 (one per worker)");
}
