//! Users and tokens: unique non-empty names, expiry, revocation, rotation
//! and the recorded last use.
mod common;

use callbridge_crm_store::*;
use common::{fresh, t};

fn name(s: &str) -> PersonName {
    PersonName::new(s).unwrap()
}

fn tok(b: u8) -> ApiToken {
    ApiToken::from_random_bytes([b; 40])
}

fn duplicate_empty_and_numeric_user_names_are_refused() {
    let (_d, mut s) = fresh();
    s.create_user(&name("ann"), Role::Viewer, &tok(1), t(0))
        .unwrap();
    let again = s.create_user(&name("ann"), Role::Admin, &tok(2), t(1));
    assert!(
        matches!(
            again,
            Err(Error::Conflict {
                entity: Entity::User,
                ..
            })
        ),
        "{again:?}"
    );
    for bad in ["", "  ", " ann", "12", "a\nb"] {
        let r = s.create_user(&name(bad), Role::Viewer, &tok(3), t(1));
        assert!(
            matches!(r, Err(Error::InvalidInput { .. })),
            "{bad:?}: {r:?}"
        );
    }
    // Nothing but the first user was written; its token is the only one.
    assert_eq!(s.list_users().unwrap().len(), 1);
    assert!(s.verify_token(&tok(2).expose(), t(2)).is_err());
    assert_eq!(
        s.find_user("ann").unwrap().map(|u| u.role),
        Some(Role::Viewer)
    );
    assert!(s.find_user("Ann").unwrap().is_none());
}

fn an_expired_token_is_unauthorized_from_its_expiry_on() {
    let (_d, mut s) = fresh();
    let id = s
        .create_user_expiring(&name("ann"), Role::Viewer, &tok(1), Some(t(60)), t(0))
        .unwrap();
    let u = s.verify_token(&tok(1).expose(), t(59)).unwrap();
    assert_eq!((u.id, u.token_expires_at), (id, Some(t(60))));
    assert!(matches!(
        s.verify_token(&tok(1).expose(), t(60)),
        Err(Error::Unauthorized)
    ));
    assert_eq!(
        s.get_user(id).unwrap().token_state(t(61)),
        TokenState::Expired
    );
    // An expiry that is not in the future is refused.
    let r = s.create_user_expiring(&name("bob"), Role::Viewer, &tok(2), Some(t(0)), t(0));
    assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    // Rotation gives a fresh token with a new expiry (or none).
    s.rotate_token(id, &tok(3), None, t(100)).unwrap();
    assert!(s.verify_token(&tok(3).expose(), t(1_000_000)).is_ok());
}

fn revoking_kills_the_token_and_keeps_the_user_rotation_kills_the_old_token() {
    let (_d, mut s) = fresh();
    let id = s
        .create_user(&name("ann"), Role::AgentOperator, &tok(1), t(0))
        .unwrap();
    assert!(s.revoke_user(id, t(5)).unwrap());
    assert!(!s.revoke_user(id, t(6)).unwrap(), "already revoked");
    assert!(matches!(
        s.verify_token(&tok(1).expose(), t(7)),
        Err(Error::Unauthorized)
    ));
    let u = s.get_user(id).unwrap();
    assert_eq!(
        (u.revoked_at, u.token_state(t(7))),
        (Some(t(5)), TokenState::Revoked)
    );
    assert!(matches!(
        s.revoke_user(UserId(99), t(5)),
        Err(Error::NotFound { .. })
    ));
    // Rotation re-enables the user with a new token; the old one stays dead.
    s.rotate_token(id, &tok(2), None, t(8)).unwrap();
    assert!(s.verify_token(&tok(1).expose(), t(9)).is_err());
    let u = s.verify_token(&tok(2).expose(), t(9)).unwrap();
    assert_eq!((u.revoked_at, u.token_issued_at), (None, t(8)));
}

fn token_use_is_recorded_for_the_current_token_only_and_never_goes_back() {
    let (_d, mut s) = fresh();
    let id = s
        .create_user(&name("ann"), Role::Viewer, &tok(1), t(0))
        .unwrap();
    assert_eq!(s.get_user(id).unwrap().token_last_used_at, None);
    assert!(s.record_token_use(&tok(1).id(), t(10)).unwrap());
    assert!(!s.record_token_use(&tok(1).id(), t(5)).unwrap(), "older");
    assert_eq!(s.get_user(id).unwrap().token_last_used_at, Some(t(10)));
    s.rotate_token(id, &tok(2), None, t(20)).unwrap();
    assert_eq!(s.get_user(id).unwrap().token_last_used_at, None);
    // A late write for the rotated-away token changes nothing.
    assert!(!s.record_token_use(&tok(1).id(), t(30)).unwrap());
    assert_eq!(s.get_user(id).unwrap().token_last_used_at, None);
}

on_both_backends!(
    duplicate_empty_and_numeric_user_names_are_refused,
    an_expired_token_is_unauthorized_from_its_expiry_on,
    revoking_kills_the_token_and_keeps_the_user_rotation_kills_the_old_token,
    token_use_is_recorded_for_the_current_token_only_and_never_goes_back,
);
