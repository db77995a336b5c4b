export const RunsPage = () => <div className="page" />
