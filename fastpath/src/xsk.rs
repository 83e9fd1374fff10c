//! AF_XDP socket (STUB).
