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
