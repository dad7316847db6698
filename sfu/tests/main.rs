//! The SFU in simulated time: real str0m sessions and DTLS-SRTP exchanging
//! datagrams in memory with a room, no sockets. Each file is a module of this
//! one binary.

mod adaptation;
mod audio;
mod bandwidth;
mod cascade;
mod keyframes;
mod nack;
mod polling;
mod simulcast;
