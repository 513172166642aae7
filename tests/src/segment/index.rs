//! Lookups of users by id and e-mail that stay fast in a 50k-user workspace (a linear scan per
//! `GET /users/{id}` or group member would make the fake, not the client, the bottleneck).
//!
//! The workspace is plain data that handlers and tests change freely, so the index is never
//! trusted: a hit is checked against the workspace, and a miss or a stale hit rebuilds it.

use super::model::{User, Workspace, same_email};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct UserIndex {
    by_id: HashMap<String, usize>,
    by_email: HashMap<String, usize>,
}

fn email_key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

impl UserIndex {
    fn rebuild(&mut self, ws: &Workspace) {
        self.by_id.clear();
        self.by_email.clear();
        for (i, u) in ws.users.iter().enumerate() {
            self.by_id.entry(u.id.clone()).or_insert(i);
            self.by_email.entry(email_key(&u.email)).or_insert(i);
        }
    }

    fn find<'w>(
        &mut self,
        ws: &'w Workspace,
        key: &str,
        map: fn(&UserIndex) -> &HashMap<String, usize>,
        matches: impl Fn(&User) -> bool,
    ) -> Option<&'w User> {
        let hit = |index: &UserIndex| {
            map(index)
                .get(key)
                .and_then(|&i| ws.users.get(i))
                .filter(|u| matches(u))
        };
        if let Some(u) = hit(self) {
            return Some(u);
        }
        self.rebuild(ws);
        hit(self)
    }

    pub fn user<'w>(&mut self, ws: &'w Workspace, id: &str) -> Option<&'w User> {
        self.find(ws, id, |x| &x.by_id, |u| u.id == id)
    }

    pub fn user_by_email<'w>(&mut self, ws: &'w Workspace, email: &str) -> Option<&'w User> {
        self.find(
            ws,
            &email_key(email),
            |x| &x.by_email,
            |u| same_email(&u.email, email),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::model::GenSpec;

    #[test]
    fn lookups_follow_changes_to_the_workspace() {
        let mut ws = Workspace::generate(7, GenSpec::default());
        let mut index = UserIndex::default();
        let first = ws.users[0].clone();
        assert_eq!(
            index.user(&ws, &first.id).map(|u| &u.email),
            Some(&first.email)
        );
        let shouting = first.email.to_ascii_uppercase();
        assert_eq!(
            index.user_by_email(&ws, &shouting).map(|u| &u.id),
            Some(&first.id)
        );
        ws.users.remove(0);
        assert!(index.user(&ws, &first.id).is_none());
        let moved = ws.users[0].clone();
        assert_eq!(index.user(&ws, &moved.id).map(|u| &u.id), Some(&moved.id));
        ws.users.push(first.clone());
        assert_eq!(
            index.user_by_email(&ws, &first.email).map(|u| &u.id),
            Some(&first.id)
        );
    }
}
