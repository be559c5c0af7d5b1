"""SFTP source and sink (asyncssh)."""
