//! Frame and DHCP message parsing and building (STUB, being implemented).
