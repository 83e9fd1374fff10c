//! Worker loop (STUB).
