//! Support code for NoKV's end-to-end tests.

pub mod seaweed;
