//! The API client commands: `gantry repo`, `gantry build`, `gantry secret`, talking to a server
//! at GANTRY_SERVER with GANTRY_TOKEN.

use clap::Subcommand;

#[derive(Subcommand, Clone, Debug)]
pub enum RepoCommand {}

#[derive(Subcommand, Clone, Debug)]
pub enum BuildCommand {}

#[derive(Subcommand, Clone, Debug)]
pub enum SecretCommand {}

pub fn repo(command: RepoCommand) -> anyhow::Result<u8> {
    match command {}
}

pub fn build(command: BuildCommand) -> anyhow::Result<u8> {
    match command {}
}

pub fn secret(command: SecretCommand) -> anyhow::Result<u8> {
    match command {}
}
