//! Integration tests: the real `sundial` binary on a loopback port with a
//! temporary data directory, spoken to over HTTP and telnet.

mod access;
mod access_scopes;
mod baidu;
mod baidu_agg;
mod baidu_auth;
mod baidu_errors;
mod baidu_fill;
mod baidu_limits;
mod baidu_mgmt;
mod baidu_query;
mod baidu_sql;
mod baidu_write;
mod bk;
mod bk_ingest;
mod bk_meta;
mod cli;
mod clients;
mod collectd;
mod crash_loop;
mod durability;
mod edge;
mod full_disk;
mod golden;
mod harness;
mod opentsdb_alibaba;
mod opentsdb_limits;
mod opentsdb_meta;
mod opentsdb_put;
mod opentsdb_query;
mod opentsdb_telnet;
mod opentsdb_uids;
mod opentsdb_vectors;
mod overload;
