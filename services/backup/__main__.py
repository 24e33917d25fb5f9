from services.backup.app import guardian

guardian.main()
