//! Who may use the socket: the agent's own user, and the users and groups named with
//! `--allow`, checked on each connection by the kernel's word for the peer (`SO_PEERCRED`)
//! before anything is read from it.

use std::collections::BTreeSet;
use std::os::fd::AsFd;

use uzers::os::unix::GroupExt;

use crate::output::Failure;

/// The users allowed, as uids, and the groups whose members are allowed, as gids.
#[derive(Debug)]
pub(crate) struct Policy {
    uids: BTreeSet<u32>,
    gids: BTreeSet<u32>,
}

impl Policy {
    /// The agent's own user and each `--allow` name: a user name, else a group name (a
    /// number is a uid). A name that is neither is a mistake, said at start.
    pub(crate) fn new(allow: &[String]) -> Result<Policy, Failure> {
        let mut uids = BTreeSet::from([rustix::process::geteuid().as_raw()]);
        let mut gids = BTreeSet::new();
        for name in allow {
            if let Some(user) = uzers::get_user_by_name(name) {
                uids.insert(user.uid());
            } else if let Some(group) = uzers::get_group_by_name(name) {
                gids.insert(group.gid());
                // Members by the group list: SO_PEERCRED gives the peer's primary group only.
                for member in group.members() {
                    if let Some(user) = uzers::get_user_by_name(member) {
                        uids.insert(user.uid());
                    }
                }
            } else if let Ok(uid) = name.parse::<u32>() {
                uids.insert(uid);
            } else {
                return Err(Failure::usage(format!(
                    "--allow {:?} is neither a user nor a group of this host",
                    name.chars().take(64).collect::<String>()
                )));
            }
        }
        Ok(Policy { uids, gids })
    }

    /// Whether the peer of `socket` may be served; `Err` with its uid when not.
    pub(crate) fn check(&self, socket: impl AsFd) -> Result<(), String> {
        let cred = rustix::net::sockopt::socket_peercred(socket)
            .map_err(|e| format!("its credentials cannot be read ({e})"))?;
        let (uid, gid) = (cred.uid.as_raw(), cred.gid.as_raw());
        if self.uids.contains(&uid) || self.gids.contains(&gid) {
            Ok(())
        } else {
            Err(format!("uid {uid} is not allowed"))
        }
    }
}
