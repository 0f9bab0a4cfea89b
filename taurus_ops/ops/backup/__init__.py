"""Backups: one ``.tar.gz`` that plain ``tar -xzf FILE -C ~/`` restores, with a manifest.

Each job has one entry point, ``run(ctx, request) -> result``:

    create.run(ctx, CreateRequest())    write, verify, keep, rotate (and upload offsite)
    verify.run(ctx, VerifyRequest(ref)) read a backup whole and check it
    restore.run(ctx, RestoreRequest(ref, dry_run=True))  plan, then (unless a dry run) write
    listing.run(ctx, ListRequest())     the backups kept, newest first
    rotate.run(ctx, RotateRequest())    apply backup.keep now

layout.py says what a backup is (names, member paths, the manifest, the scope);
gather.py picks the files; archive.py writes the tar; verify.py checks one;
restore.py plans (a pure function of the manifest and the disk's facts) and writes;
rotate.py removes old ones.

Names (the tutorial's ``NAME.json`` symlinks) are stored as symlink members and
listed in the manifest; restore recreates only those, pointing at restored files.
The file checkpoints of the sessions backed up go in ``checkpoints/`` beside them; a
checkpoint hard-linked into a fork's folder and its parent's is stored once, its other
name a tar hard link, the only hard link a backup may hold. Any other link or hard
link, a device, an absolute path or ``..`` makes an archive fail verification, and
restore writes nothing from an archive that fails.
"""
