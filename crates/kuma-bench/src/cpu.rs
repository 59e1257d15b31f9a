//! CPU time of the calling thread. The machine running benchmarks is shared
//! and busy, so wall time would measure the neighbours; the thread's own CPU
//! clock counts only the work done here.

use std::time::Duration;

/// CPU time this thread has used so far (nanosecond resolution on Linux).
pub fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Runs `f` and returns its result with the CPU time it took on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = thread_cpu_time();
    let out = f();
    (out, thread_cpu_time().saturating_sub(start))
}

/// Nearest-rank percentile of an ascending slice; zero when empty.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_takes_cpu_time_and_sleeping_does_not() {
        let ((), busy) = measure(|| {
            let mut x = 0u64;
            // Through `black_box`, so that an optimized build cannot sum
            // the series in closed form.
            for i in 0..20_000_000u64 {
                x = x.wrapping_add(std::hint::black_box(i).wrapping_mul(i));
            }
            std::hint::black_box(x);
        });
        assert!(busy > Duration::from_millis(1), "{busy:?}");
        let ((), slept) = measure(|| std::thread::sleep(Duration::from_millis(200)));
        assert!(slept < Duration::from_millis(100), "{slept:?}");
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
