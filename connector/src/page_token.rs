//! The page token of a listing that walks several Segment collections one after another (a
//! group's user members, then its invitations; functions of each `resourceType` in turn): the
//! stage the listing is in and Segment's cursor within it, written `<stage>|<cursor>`.
//!
//! Listings of one collection hand out Segment's cursor as it is; only multi-stage listings use
//! this type. The written form must not change: hosts keep tokens in their checkpoints and
//! resume a sync from them.

use crate::bindings::ConnectorError;
use std::fmt;

/// The stages of one listing.
pub(crate) trait Stage: Sized {
    /// Where the empty token starts.
    const FIRST: Self;
    /// The stage as written in a token (no `|`).
    fn name(&self) -> String;
    /// The stage a token names, if this listing has it.
    fn from_name(name: &str) -> Option<Self>;
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PageToken<S> {
    pub stage: S,
    /// Segment's cursor within the stage; `None` for its first page.
    pub cursor: Option<String>,
}

impl<S: Stage> PageToken<S> {
    /// The first page of `stage`.
    pub fn start(stage: S) -> Self {
        PageToken {
            stage,
            cursor: None,
        }
    }

    /// The page of `stage` at Segment's `cursor`.
    pub fn at(stage: S, cursor: String) -> Self {
        PageToken {
            stage,
            cursor: Some(cursor),
        }
    }

    /// The empty token is the first page of the first stage; any other must be one this
    /// listing issued.
    pub fn parse(token: &str) -> Result<Self, ConnectorError> {
        if token.is_empty() {
            return Ok(Self::start(S::FIRST));
        }
        let stage_and_cursor = token
            .split_once('|')
            .and_then(|(stage, cursor)| Some((S::from_name(stage)?, cursor)));
        let Some((stage, cursor)) = stage_and_cursor else {
            return Err(not_issued(token));
        };
        Ok(PageToken {
            stage,
            cursor: (!cursor.is_empty()).then(|| cursor.to_string()),
        })
    }
}

impl<S: Stage> fmt::Display for PageToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cursor = self.cursor.as_deref().unwrap_or_default();
        write!(f, "{}|{cursor}", self.stage.name())
    }
}

/// The one answer to a token no listing of this connector issued.
fn not_issued(token: &str) -> ConnectorError {
    ConnectorError::InvalidArgument(format!(
        "page token {token:?} was not issued by this connector"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::GroupMembers;
    use crate::resources::FunctionType;

    fn round_trip<S: Stage + fmt::Debug + PartialEq>(token: PageToken<S>) {
        assert_eq!(PageToken::parse(&token.to_string()).unwrap(), token);
    }

    #[test]
    fn tokens_round_trip() {
        for stage in [GroupMembers::Users, GroupMembers::Invites] {
            round_trip(PageToken::start(stage));
            round_trip(PageToken::at(stage, "MA==".into()));
            // Segment's cursors are opaque: one holding the separator comes back whole.
            round_trip(PageToken::at(stage, "a|b".into()));
        }
        for index in 0..crate::resources::FUNCTION_TYPES.len() {
            round_trip(PageToken::start(FunctionType(index)));
            round_trip(PageToken::at(FunctionType(index), "MQ==".into()));
        }
        // The written form hosts keep in their checkpoints.
        assert_eq!(
            PageToken::at(GroupMembers::Users, "MA==".into()).to_string(),
            "users|MA=="
        );
        assert_eq!(PageToken::start(FunctionType(2)).to_string(), "2|");
        assert_eq!(
            PageToken::<GroupMembers>::parse("").unwrap(),
            PageToken::start(GroupMembers::Users),
            "the empty token is the first page of the first stage"
        );
    }

    fn refused<S: Stage + fmt::Debug>(token: &str) {
        match PageToken::<S>::parse(token) {
            Err(ConnectorError::InvalidArgument(m)) => assert_eq!(
                m,
                format!("page token {token:?} was not issued by this connector")
            ),
            other => panic!("{token:?} gave {other:?}"),
        }
    }

    #[test]
    fn tokens_not_issued_here_are_refused() {
        for token in [
            "users", "MA==", "|MA==", "roles|", "USERS|x", " users|x", "1|",
        ] {
            refused::<GroupMembers>(token);
        }
        for token in ["0", "MA==", "|MA==", "5|", "-1|", "x|", "users|"] {
            refused::<FunctionType>(token);
        }
    }

    /// Every listing with a multi-stage token, and tokens none of them issued.
    #[test]
    fn every_multi_stage_listing_refuses_foreign_tokens_alike() {
        use crate::connector::Connector;
        use crate::ids::{FUNCTION, WORKSPACE};
        use crate::resources::rid;
        use crate::testing::{FakeEnv, workspace};

        let env = FakeEnv::new();
        let c = Connector::new(&env, &Default::default());
        let ws = rid(WORKSPACE, "w");
        for token in ["users", "MA==", "bogus|MA==", "5|", "-1|", "x|"] {
            let results = [
                c.list_grants(&workspace::group(), token).map(|_| ()),
                c.list_resources(FUNCTION, Some(&ws), token).map(|_| ()),
            ];
            for result in results {
                match result {
                    Err(ConnectorError::InvalidArgument(m)) => assert_eq!(
                        m,
                        format!("page token {token:?} was not issued by this connector")
                    ),
                    other => panic!("{token:?} gave {other:?}"),
                }
            }
        }
        assert!(env.requests().is_empty(), "nothing is fetched for them");
    }
}
