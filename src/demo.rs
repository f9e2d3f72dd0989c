//! demo (to be written)
