//! Data-parallel training across MPI processes (feature `mpi`). Not a libtest harness: run it
//! under `mpirun -np 2` (`.ci/run` does). Each process checks that:
//!
//! - the collectives add, broadcast and wait across processes;
//! - 20 steps of the MLP and of SimpleConvNet on 2 MPI processes give, bit for bit, the
//!   parameters of the same steps on 2 threads, and match one plain loop to rounding;
//! - replicas with other shapes are refused, naming the rank and each difference.
//!
//! With `MPI_CHECK_PANIC` set, rank 1 panics instead while rank 0 waits in a barrier: the job
//! must end with an error, not hang. A failed check panics, and the panic hook of `MpiComm::init` aborts the whole job, so
//! `mpirun` exits with an error instead of hanging.

#[path = "common/training.rs"]
mod training;

use rand::SeedableRng;
use tapegrad::nn::{Activation, Init, Mlp};
use tapegrad::parallel::{self, Communicator, MpiComm};
use tapegrad::state::StateDict;
use tapegrad::{Float, Tape};
use training::{Build, data_parallel, mlp, plain, simple_conv_net, worker};

fn largest_difference<F: Float>(a: &StateDict<F>, b: &StateDict<F>) -> f64 {
    a.iter()
        .filter_map(|(name, _)| Some((a.tensor(name)?, b.tensor(name)?)))
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p.as_f64() - q.as_f64()).abs()).collect::<Vec<_>>())
        .fold(0.0, f64::max)
}

fn same_as_threads<F: Float>(comm: &MpiComm, name: &str, build: Build<F>, batch: usize, tolerance: f64) {
    let over_mpi = worker(comm, build, batch).unwrap();
    let on_threads = data_parallel(build, batch, 2);
    assert_eq!(over_mpi, on_threads[comm.rank()], "{name} {}: MPI and threads differ", F::NAME);
    let difference = largest_difference(&over_mpi, &plain(build, batch));
    assert!(difference < tolerance, "{name} {}: {difference:e} from the plain loop", F::NAME);
    if comm.rank() == 0 {
        println!(
            "{name} {}: 2 MPI processes = 2 threads bit for bit; {difference:.1e} from one loop",
            F::NAME
        );
    }
}

fn main() {
    let comm = MpiComm::init().unwrap();
    let (rank, size) = (comm.rank(), comm.size());
    assert_eq!(size, 2, "run under mpirun -np 2");
    // `.ci/run` also runs this with MPI_CHECK_PANIC=1: rank 1 panics while rank 0 waits in a
    // collective, and the job must end with an error rather than hang
    if std::env::var_os("MPI_CHECK_PANIC").is_some() {
        if rank == 1 {
            panic!("rank 1 fails on purpose");
        }
        comm.barrier().unwrap();
        unreachable!("rank 0 cannot pass a barrier rank 1 never reaches");
    }

    let mut x = [[1e16, 1.0][rank], rank as f64];
    comm.all_reduce_sum(&mut x).unwrap();
    assert_eq!(x, [1e16 + 1.0, 1.0]);
    let mut b = [rank as f32 + 10.0; 3];
    comm.broadcast(&mut b, 1).unwrap();
    assert_eq!(b, [11.0; 3]);
    comm.barrier().unwrap();

    // a global batch of no samples: zeros, not 0/0; a process of weight 0 adds nothing, not even NaN
    let mut none = [[f64::NAN, 1.0][rank], 2.0];
    comm.all_reduce_mean(&mut none, 0.0).unwrap();
    assert_eq!(none, [0.0, 0.0]);
    let mut one = [[f32::NAN, 4.0][rank], [f32::INFINITY, -2.0][rank]];
    comm.all_reduce_mean(&mut one, [0.0, 3.0][rank]).unwrap();
    assert_eq!(one, [4.0, -2.0]);
    // an invalid weight is an error on every process, and so is a root that is not a rank
    let e = comm.all_reduce_mean(&mut [1.0f64], [1.0, f64::NAN][rank]).unwrap_err().to_string();
    let expected = "expected a finite number ≥ 0 (the worker's number of samples)";
    let expected = if rank == 1 {
        format!("all_reduce_mean: worker 1 passed the weight NaN; {expected}")
    } else {
        format!("all_reduce_mean: another worker passed a negative, NaN or infinite weight; {expected}")
    };
    assert_eq!(e, expected);
    let e = comm.broadcast(&mut [0.0f32], 2).unwrap_err().to_string();
    assert_eq!(e, "broadcast: root 2; expected a rank in 0..2 (one per worker)");
    comm.barrier().unwrap();

    same_as_threads::<f32>(&comm, "mlp", mlp, 64, 1e-5);
    same_as_threads::<f64>(&comm, "mlp", mlp, 65, 1e-12);
    same_as_threads::<f32>(&comm, "simple_conv_net", simple_conv_net, 32, 1e-5);

    let tape = Tape::<f32>::new();
    let sizes: &[usize] = if rank == 1 { &[4, 6, 2] } else { &[4, 5, 2] };
    let model = Mlp::new(&tape, sizes, Activation::Relu, Init::He, &mut rand::rngs::StdRng::seed_from_u64(1));
    let e = parallel::sync_replicas(&comm, &tape, &model).unwrap_err().to_string();
    let expected = if rank == 1 {
        "worker 1's model differs from worker 0's: \"fc1.bias\" is f32 [6], expected f32 [5]; \"fc1.weight\" is \
         f32 [4, 6], expected f32 [4, 5]; \"fc2.weight\" is f32 [6, 2], expected f32 [5, 2]"
    } else {
        "worker 1's model differs from worker 0's: workers [1] differ"
    };
    assert_eq!(e, expected);
    comm.barrier().unwrap();
    if rank == 0 {
        println!("mpi: all checks passed on {size} processes");
    }
}
