//! Conformance suite for every [`super::MetaStore`] (to be written).
