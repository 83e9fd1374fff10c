//! Types shared by the XDP program and user space (STUB).
#![no_std]
