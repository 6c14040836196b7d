//! The tests are in `tests/`; this library is empty.
