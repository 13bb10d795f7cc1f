//! Arm SDEI client (filled in by the arm64 issue).
#![no_std]
