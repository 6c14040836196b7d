//! A local stand-in for the vendor's gateway and API (being written).

#![forbid(unsafe_code)]
