from taurus_ops.cli.main import main

main()
