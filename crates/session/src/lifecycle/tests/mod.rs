//! Tests of the lifecycle machine.
