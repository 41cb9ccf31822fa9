//! The async runtime handed to openraft: tokio, with a random number generator that a
//! deterministic simulation can seed.
//!
//! openraft draws its election timeouts and tick jitter from `AsyncRuntime::thread_rng`. In
//! production that is seeded from the OS, as with openraft's own tokio runtime. A simulation
//! runs every node on one current-thread tokio runtime; [`seed_thread`] makes the draws on that
//! thread a function of the seed, so a seed replays the same elections.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

#[allow(deprecated)] // the same type as `openraft_rt_tokio::TokioRuntime`, re-exported
use openraft::impls::TokioRuntime;
use openraft::{AsyncRuntime, OptionalSend};
use rand_0_10::rngs::SmallRng;
use rand_0_10::SeedableRng;

thread_local! {
    static SEED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Seed (or, with `None`, unseed) openraft's random draws made on this thread.
pub(crate) fn seed_thread(seed: Option<u64>) {
    SEED.with(|s| s.set(seed));
}

/// SplitMix64: advances a seed to the next, well mixed.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Tokio with a seedable RNG; everything else is delegated to openraft's tokio runtime.
#[derive(Debug)]
pub struct Rt {
    inner: TokioRuntime,
}

impl AsyncRuntime for Rt {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = <TokioRuntime as AsyncRuntime>::Instant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SmallRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        match SEED.with(|s| {
            s.get().map(|mut seed| {
                let draw = splitmix64(&mut seed);
                s.set(Some(seed));
                draw
            })
        }) {
            Some(draw) => SmallRng::seed_from_u64(draw),
            None => rand_0_10::make_rng(),
        }
    }

    type Mpsc = <TokioRuntime as AsyncRuntime>::Mpsc;
    type Watch = <TokioRuntime as AsyncRuntime>::Watch;
    type Oneshot = <TokioRuntime as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::Mutex<T>;

    fn new(threads: usize) -> Self {
        Rt {
            inner: TokioRuntime::new(threads),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.inner.block_on(future)
    }
}
