from services.process.app import guardian

guardian.main()
