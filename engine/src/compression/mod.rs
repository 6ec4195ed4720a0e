//! Record batch compression codecs.
