pub mod sfu;
