//! The parts of guard shared by the compiler and the runtime: the BPF assembler, the program
//! templates, the object writer, and the ABI between kernel programs and user space.

pub mod abi;
pub mod asm;
pub mod btf;
pub mod dfa_table;
pub mod elf;
pub mod fields;
pub mod ktypes;
pub mod programs;
pub mod record;
pub mod sim;
