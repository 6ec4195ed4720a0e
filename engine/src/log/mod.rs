//! A partition log.
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod index;
pub mod scan;
pub mod segment;
