export const SettingsPage = () => <div className="page" />
