from services.migration.app import guardian

guardian.main()
