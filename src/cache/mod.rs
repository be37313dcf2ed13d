//! The caches of one instance: L1 (`l1`: the in-memory LRU and its entries),
//! coalescing of concurrent misses (`coalesce`), and the purge record that
//! work in flight checks (`purges`).

mod coalesce;
mod l1;
mod purges;

pub use coalesce::Coalescer;
pub use l1::{Entry, SiteId, SiteKey, L1};
pub use purges::{Purges, Ticket};
