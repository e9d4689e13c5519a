//! Live control of a call by an operator (issue 23): each request goes to
//! the call's task through its mailbox and is answered there, in the
//! order of the call's other inputs.

use bytes::Bytes;
use callbridge_crm_store::SessionId;
use tokio::sync::{broadcast, oneshot};

use super::Manager;
use crate::bridge::{CallMsg, Control, ControlError};

impl Manager {
    async fn control<T>(
        &self,
        id: SessionId,
        make: impl FnOnce(oneshot::Sender<Result<T, ControlError>>) -> Control,
    ) -> Result<T, ControlError> {
        let mb = self
            .shared
            .registry()
            .mailbox(id)
            .ok_or(ControlError::Gone)?;
        let (tx, rx) = oneshot::channel();
        mb.send(CallMsg::Control(make(tx)))
            .await
            .map_err(|_| ControlError::Gone)?;
        rx.await.map_err(|_| ControlError::Gone)?
    }

    /// Replaces the live call's model instructions.
    ///
    /// # Errors
    /// [`ControlError::InstructionsUnsupported`] when the provider refuses
    /// (the call goes on unchanged); [`ControlError::Gone`] when the call
    /// is not live here.
    pub async fn update_instructions(
        &self,
        id: SessionId,
        text: String,
    ) -> Result<(), ControlError> {
        self.control(id, |reply| Control::Instructions { text, reply })
            .await
    }

    /// Has the model say `text` now (the call must be active).
    ///
    /// # Errors
    /// [`ControlError::NotNow`], [`ControlError::NoModel`],
    /// [`ControlError::Model`], [`ControlError::Gone`].
    pub async fn say(&self, id: SessionId, text: String) -> Result<(), ControlError> {
        self.control(id, |reply| Control::Say { text, reply }).await
    }

    /// Transfers the call to the `transfer.targets` entry named `name`
    /// (the outcome follows as the call's events).
    ///
    /// # Errors
    /// [`ControlError::TargetNotAllowed`] for anything but a configured
    /// name; [`ControlError::NotNow`], [`ControlError::Gone`].
    pub async fn transfer(&self, id: SessionId, name: String) -> Result<(), ControlError> {
        self.control(id, |reply| Control::Transfer { name, reply })
            .await
    }

    /// The call's mixed audio from now on: 20 ms frames of 8 kHz 16-bit
    /// little-endian PCM (caller plus agent). A listener that falls more
    /// than a second behind loses frames.
    ///
    /// # Errors
    /// [`ControlError::Gone`] when the call is not live here.
    pub async fn listen(&self, id: SessionId) -> Result<broadcast::Receiver<Bytes>, ControlError> {
        self.control(id, |reply| Control::Listen { reply }).await
    }
}
