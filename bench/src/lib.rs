//! Benchmarks and the load generator (next capability).
