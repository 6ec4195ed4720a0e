//! A partition log.
