//! Every integration and browser test in one binary: one link of the server's
//! dependencies instead of one per file. Each file below is a module; nextest
//! still runs every test in its own process, so a test's files, ports and
//! server stay its own.

mod support;

mod access;
mod accessibility;
mod admin_auth;
mod admin_dashboard;
mod admin_history;
mod backup;
mod browser_call;
mod clinical_record;
mod config_check;
mod connectivity_check;
mod deploy;
mod firefox;
mod handover;
mod health;
mod hooks;
mod https;
mod hub_call;
mod images;
mod load;
mod locked_down;
mod media_through_sfu;
mod nodes;
mod poor_network;
mod public_surfaces;
mod queue;
mod recording;
mod records;
mod reload;
mod reports;
mod restart;
mod resume;
mod spanning;
mod tablet;
mod turn_refusals;
