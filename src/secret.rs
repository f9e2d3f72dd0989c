//! secret (to be written)
