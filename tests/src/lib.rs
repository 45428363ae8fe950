//! Support code for NoKV's end-to-end tests, crash tests and benchmarks.

pub mod crash;
pub mod seaweed;
