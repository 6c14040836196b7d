//! What the tests of every package share. Each module asserts what a correct program may take
//! for granted, and fails (saying what to install) where a tool it needs is missing.

// Test helpers: they take the C ABI's raw handles as a C program holds them (trusting them,
// as the tests do), and are made the way each test needs.
#![allow(clippy::not_unsafe_ptr_arg_deref, clippy::new_without_default)]

pub mod at_rest;
pub mod c_calls;
pub mod common;
pub mod curl;
pub mod ffi_support;
pub mod fleet_support;
pub mod redis_support;
pub mod temp_dir;
pub mod wine;
