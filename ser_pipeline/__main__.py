from ser_pipeline.cli import main

main()
