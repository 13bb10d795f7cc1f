//! Guest side of the async page fault paravirtual protocol (filled in by the async PF issues).
#![no_std]
