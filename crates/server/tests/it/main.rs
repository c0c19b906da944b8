//! Integration tests: the real `sundial` binary on a loopback port with a
//! temporary data directory, spoken to over HTTP and telnet.

mod cli;
mod clients;
mod durability;
mod harness;
mod opentsdb_put;
mod opentsdb_query;
mod opentsdb_telnet;
